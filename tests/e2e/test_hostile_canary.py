"""Hostile values on the test cluster: three launches at once (one per host), each carrying shell syntax, quotes,
newlines, unicode, leading dashes and globs in every channel that reaches a host (served model name, `-e` values,
`--label` values, arguments after `--`, HF_TOKEN, a cluster's container env). Every launch becomes ready, and
`docker inspect` shows each value literally in the container's argv, env and labels; a canary file that any shell
evaluating a value would create exists on no host, in no container, and not on this machine. Values that cannot be
carried literally are refused before any connection (a fake `ssh` first on PATH records none)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from e2e.cli import IMAGE, ok, sparkrun
from e2e.faultkit import Run, error_line, job_containers, left_everywhere, stop_all, tracebacks
from reliability_report import CaseLog
from testbed.harness import Testbed

pytestmark = pytest.mark.e2e

BUNDLED = Path(__file__).resolve().parents[2] / "recipes" / "qwen3-1.7b-vllm.yaml"
CANARY = "/tmp/sparkrun-canary"


def hostile(tag: str) -> dict[str, str]:
    """One value per channel, each of which creates CANARY-<tag>-<channel> if any shell evaluates it."""
    c = f"{CANARY}-{tag}"
    return {
        "served": f"$(touch {c}-served) `touch {c}-served2` 模型 \"q\" 'x' \\ $HOME",
        "env": f"; touch {c}-env && echo\n\t`touch {c}-env2`*",
        "label": f'\' "; touch {c}-label; " --privileged -v/:/host [a-z]* ü',
        "extra": f"-$(touch {c}-extra)",
        "secret": f"hf_$(touch {c}-secret)`touch {c}-secret2`'\"\\",
        "cluster_env": f"{{{{x}}}} $(touch {c}-cluster) %s ${{PATH}}",
    }


@pytest.fixture
def env(sparkrun_env: dict[str, str], testbed: Testbed) -> Iterator[dict[str, str]]:
    yield sparkrun_env
    stop_all(sparkrun_env)


def _canaries(testbed: Testbed) -> list[str]:
    found = [p for p in Path("/tmp").glob("sparkrun-canary-*")]
    out = [str(p) for p in found]
    for host in testbed.hosts:
        listing = testbed.exec(host, f"ls -d {CANARY}-* 2>/dev/null", check=False).stdout.split()
        out += [f"{host}:{p}" for p in listing]
        for name in job_containers(testbed, host):
            inside = testbed.docker(host, "exec", name, "sh", "-c", f"ls -d {CANARY}-* 2>/dev/null", check=False)
            out += [f"{host}/{name}:{p}" for p in inside.stdout.split()]
    return out


def test_hostile_values_reach_the_containers_literally_and_run_nowhere(
    env: dict[str, str], testbed: Testbed, tmp_path: Path, reliability: CaseLog
) -> None:
    data = yaml.safe_load(BUNDLED.read_text())
    data.pop("command")  # the runtime builds the engine's argv from the settings (see the known gap on `command:`)
    recipe = tmp_path / "hostile-e2e.yaml"
    recipe.write_text(yaml.safe_dump(data))
    hosts = testbed.hosts[:3]
    values = {host: hostile(f"h{i}") for i, host in enumerate(hosts, 1)}
    runs = {}
    for host in hosts:
        v = values[host]
        config_dir = tmp_path / f"config-{host}"
        run_env = dict(env, SPARKRUN_CONFIG_DIR=str(config_dir), HF_TOKEN=v["secret"])
        testbed.script_run("cluster-file", str(config_dir))
        ok(run_env, "cluster", "update", "testbed", "-e", f"CLUSTER_VAR={v['cluster_env']}")
        args = (
            str(recipe),
            "--cluster",
            "testbed",
            "-H",
            host,
            "--image",
            IMAGE,
            "--no-follow",
            "--json",
            "-o",
            f"served_model_name={v['served']}",
            "-e",
            f"HOSTILE={v['env']}",
            "--label",
            f"team={v['label']}",
            "--",
            f"--tokenizer={v['extra']}",
        )
        runs[host] = Run(run_env, args)
    codes = {host: run.finish(240) for host, run in runs.items()}
    canaries = _canaries(testbed)
    checked = []
    for host in hosts:
        v, run = values[host], runs[host]
        assert codes[host] == 0, run.stderr
        out = json.loads(run.stdout)
        assert out["ready"] is True and out["served_model_name"] == v["served"], out
        (name,) = job_containers(testbed, host)
        (info,) = json.loads(testbed.docker(host, "inspect", name).stdout)
        argv = [*info["Config"]["Entrypoint"], *info["Config"]["Cmd"]]
        environment = info["Config"]["Env"]
        assert argv[argv.index("--served-model-name") + 1] == v["served"]
        assert argv[-1] == f"--tokenizer={v['extra']}"
        assert f"HOSTILE={v['env']}" in environment and f"CLUSTER_VAR={v['cluster_env']}" in environment
        assert f"HF_TOKEN={v['secret']}" in environment
        assert info["Config"]["Labels"]["sparkrun.team"] == v["label"]
        checked.append(host)
    reliability.case(
        "hostile values in every channel, on the test cluster",
        suite="hostile",
        phase="run to ready",
        fault="served name, -e, --label, -- args, HF_TOKEN, cluster env: $(), backticks, ;, &&, quotes, newline, "
        "tab, unicode, leading dashes, globs",
        checked="ready; docker inspect shows each value literally (argv, env, labels); no canary on any host, "
        "in any container or here",
        inputs=6 * len(hosts),
        containers_left=0,
        tracebacks=tracebacks(*(r.stderr for r in runs.values())),
        cause=f"canaries found: {canaries}" if canaries else "",
    )
    assert canaries == []
    assert checked == hosts


def test_values_that_cannot_travel_literally_are_refused_before_any_connection(
    env: dict[str, str], testbed: Testbed, tmp_path: Path, reliability: CaseLog
) -> None:
    marker = tmp_path / "ssh-called"
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "ssh").write_text(f"#!/bin/sh\ntouch {marker}\nexit 255\n")
    (fake / "ssh").chmod(0o755)
    no_ssh = dict(env, PATH=f"{fake}{os.pathsep}{env['PATH']}")
    host = testbed.hosts[0]
    base = ("qwen3-1.7b-vllm", "--cluster", "testbed", "-H", host, "--image", IMAGE, "--no-follow")
    cases = {
        "a newline in the served model name": ("--served-model-name", "a\nb"),
        "a newline in a secret": ("-e", "MY_TOKEN=a\nLD_PRELOAD=/tmp/x.so"),
        "an image that is an option": ("--image", "--privileged"),
        "a label that replaces sparkrun's own": ("--label", "job=other"),
        "an environment name that is no name": ("-e", "A B=1"),
        "a value over 64 KiB": ("-e", "BIG=" + "x" * 70_000),
    }
    lines = {}
    for title, extra in cases.items():
        r = sparkrun(no_ssh, "run", *base, *extra)
        lines[title] = error_line(r.stderr)
        assert r.returncode == 3, (title, r.stderr)
        assert len([x for x in r.stderr.splitlines() if x.startswith("error: ")]) == 1 and "hint: " in r.stderr
        assert tracebacks(r.stderr) == 0
    reliability.case(
        "values that cannot travel literally are refused",
        suite="hostile",
        phase="before any connection",
        fault="; ".join(cases),
        checked="exit 3, one line naming the value, a hint; the fake ssh first on PATH was never called",
        exit_code=3,
        cause=next(iter(lines.values())),
        inputs=len(cases),
        tracebacks=0,
    )
    assert not marker.exists()
    assert left_everywhere(testbed) == 0
