"""Host scripts: every packaged .sh is valid bash and shellcheck-clean, and values survive the quoted preamble
byte for byte, whatever they contain."""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparkrun.shell import ParamValue, assignment, render_script

SHELL_DIR = Path(str(resources.files("sparkrun.shell")))
HOST_SCRIPTS = ["probe", "launch", "readiness", "status", "stop", "logs", "hooks"]
CHAIN_SCRIPTS = ["image_send", "image_recv", "model_send", "model_recv"]
SHELLCHECK = shutil.which("shellcheck") or str(Path(__file__).parents[3] / ".venv/bin/shellcheck")

HOSTILE = [
    "plain",
    "",
    "with space",
    "it's",
    '"double"',
    "$(touch /tmp/pwned)",
    "`id`",
    "${HOME}",
    "a;b|c&d",
    "new\nline",
    "tab\there",
    "*",
    "--flag=value",
    '{"level": 3}',
    "ünïcödé",
    "\\backslash\\",
]


def run_bash(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", text], capture_output=True, text=True, check=False)


@pytest.mark.parametrize("name", sorted(str(p.relative_to(SHELL_DIR)) for p in SHELL_DIR.rglob("*.sh")))
def test_every_packaged_script_is_valid_bash(name: str) -> None:
    proc = subprocess.run(["bash", "-n", str(SHELL_DIR / name)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


PARAMS: dict[str, ParamValue] = {
    "IMAGES": ["img:1"],
    "PORTS": ["8000"],
    "JOB_ID": "abc",
    "PEER": "10.0.0.2",
    "CONTAINER": "c",
    "IMAGE": "img",
    "DOCKER_OPTS": ["--init"],
    "ENTRYPOINT": "vllm",
    "CMD": ["serve", "m"],
    "HF_CACHE": "~/.cache/huggingface",
    "IB_DETECT": "",
    "HEAD_ADDRESS": "10.0.0.1",
    "SECRET_ENV": [],
    "PULL": "missing",
    "WAIT_ADDR": "127.0.0.1",
    "WAIT_PORT": "",
    "WAIT_TIMEOUT": "60",
    "LOG_LINES": "30",
    "ADDR": "127.0.0.1",
    "PORT": "8000",
    "PORT_TIMEOUT": "10",
    "HEALTH_TIMEOUT": "10",
    "INFERENCE": True,
    "INFERENCE_TIMEOUT": "10",
    "BODY": "{}",
    "STOP_TIMEOUT": "10",
    "SETTLE": "0",
    "CONTAINERS": ["c"],
    "TAIL": "100",
    "FOLLOW": False,
    "PREFIX": False,
    "GATED": True,
    "COPY_TARS": ["dGFy"],
    "COPY_DESTS": ["/workspace/mods"],
    "PRE_HOOKS": ["echo hi"],
    "PRE_TIMEOUTS": ["60"],
    "PRE_LABELS": ["pre_exec[0]"],
    "HOOKS": ["echo hi"],
    "TIMEOUTS": ["60"],
    "LABELS": ["post_exec[0]"],
}
# The ends of a copy chain (they share chain_lib.sh): a sender or hop with a next hop.
CHAIN_PARAMS: dict[str, ParamValue] = {
    "NAME": "spark1",
    "IMAGE": "img",
    "PULL": True,
    "HOP_SCRIPTS": ["#!/usr/bin/env bash\n"],
    "NEXT_SSH": ["ssh", "spark2"],
    "NEXT_COMMAND": "bash -s",
    "NEXT_NAME": "spark2",
    "MODE": "stream",
    "EXPECT_ID": "sha256:0",
    "SKIP_BYTES": "0",
    "HUB_DIR": "~/.cache/huggingface/hub",
    "STATE_DIR": "~/.cache/huggingface/sparkrun",
    "REPO_FOLDER": "models--org--m",
    "COMMIT": "0" * 40,
    "FILE_PATHS": ["config.json"],
    "FILE_SIZES": ["2"],
    "FILE_BLOBS": ["b"],
    "FILE_SHA256": [""],
    "FILE_BLOB_IDS": ["b"],
    "FILE_URLS": ["http://127.0.0.1/config.json"],
    "WANT": ["1"],
    "SEND_IDX": ["0"],
    "SEND_FROM": ["0"],
    "CHUNK": "1048576",
}


def rendered(name: str) -> str:
    return render_script(name, CHAIN_PARAMS if name in CHAIN_SCRIPTS else PARAMS).text


@pytest.mark.parametrize("name", HOST_SCRIPTS + CHAIN_SCRIPTS)
def test_rendered_host_scripts_pass_shellcheck(name: str, tmp_path: Path) -> None:
    script = tmp_path / f"{name}.sh"
    script.write_text(rendered(name))
    # Excluded: SC2034 (the shared preamble sets variables a script does not use), SC2088 (a value with a literal
    # "~/" is deliberate: the script expands it on the host), SC2317 (lib.sh helpers a script does not call).
    excluded = "SC2034,SC2088,SC2317"
    proc = subprocess.run([SHELLCHECK, "-e", excluded, str(script)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("name", HOST_SCRIPTS + CHAIN_SCRIPTS)
def test_every_helper_a_rendered_script_calls_is_defined_in_it(name: str) -> None:
    text = rendered(name)
    defined = set(re.findall(r"^(sr_\w+)\(\)", text, re.MULTILINE))
    called = set(re.findall(r"\b(sr_\w+)\b(?!\(\))", text)) - {"sr_send_err"}
    assert called - defined == set()


@pytest.mark.parametrize("value", HOSTILE)
def test_string_values_reach_bash_unchanged(value: str) -> None:
    proc = run_bash(assignment("VALUE", value) + '\nprintf "%s" "$VALUE"')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == value


def test_array_values_keep_their_boundaries() -> None:
    proc = run_bash(assignment("ITEMS", HOSTILE) + '\nprintf "%s\\0" "${ITEMS[@]}"')
    assert proc.stdout.split("\0")[:-1] == HOSTILE


def test_values_cannot_be_reassigned_by_the_script_body() -> None:
    proc = run_bash(assignment("VALUE", "x") + '\nVALUE=y\necho "$VALUE"')
    assert "y" not in proc.stdout
    assert "readonly" in proc.stderr


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=40))
def test_any_text_survives_the_preamble(value: str) -> None:
    text = assignment("VALUE", value) + '\nprintf "%s" "$VALUE"'
    proc = subprocess.run(["bash", "-c", text], capture_output=True, check=False)
    assert proc.stdout.decode() == value


def test_parameter_names_must_be_shell_identifiers() -> None:
    with pytest.raises(ValueError):
        assignment("bad-name", "x")
    with pytest.raises(ValueError):
        assignment("X; rm -rf /", "x")


def test_a_failed_docker_command_is_reported_by_dockers_own_error_line() -> None:
    stderr = (
        'invalid argument "nofile=lots" for "--ulimit" flag: invalid ulimit argument: nofile=lots\n'
        "See 'docker run --help'.\n"
    )
    run_help = (
        "docker: Error response from daemon: Conflict. The container name is in use.\n\n"
        "Run 'docker run --help' for more information\n"
    )
    lib = (SHELL_DIR / "lib.sh").read_text()
    usage = (
        'invalid argument "nofile=lots" for "--ulimit" flag\nUsage:  docker run [OPTIONS] IMAGE [COMMAND] [ARG...]\n'
    )
    pulled = "Unable to find image 'x:1' locally\ndocker: Error response from daemon: pull access denied for x.\n"
    cases = (
        (stderr, 'invalid argument "nofile=lots"'),
        (run_help, "docker: Error response"),
        (usage, "invalid argument"),
        (pulled, "docker: Error response from daemon: pull access denied"),
    )
    for text, want in cases:
        proc = run_bash(f"{lib}\nsr_docker_error {assignment('X', text).split('=', 1)[1]}")
        assert proc.stdout.startswith(want), proc.stdout
        assert "--help" not in proc.stdout
