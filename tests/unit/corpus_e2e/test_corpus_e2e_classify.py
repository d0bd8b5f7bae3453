"""The corpus end-to-end classifier: a run is ready, fails for one of the few documented expected reasons, or is
unexpected. The samples are sparkrun's real output (captured from runs of corpus recipes on the test cluster)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from corpus_e2e.classify import (
    KNOWN_DEFECTS,
    REASON_CODES,
    REASONS,
    KnownDefect,
    RunRecord,
    Verdict,
    classify,
    parse_error,
)

README = Path(__file__).resolve().parents[3] / "recipes" / "README.md"

READY_JSON = json.dumps(
    {
        "job": "523571f42998",
        "recipe": "qwen3-1.7b-vllm",
        "hosts": ["10.213.0.11"],
        "endpoint": "http://10.213.0.11:8000/v1",
        "ready": True,
        "reused": False,
    }
)
PROGRESS = "starting sparkrun_523571f42998_solo@10.213.0.11\nwaiting for 10.213.0.11:8000 (0.0s)\n"
MODS = (
    "error: @official/qwen3.6/vllm/qwen3.6-27b-fp8-vllm.yaml:10: mods[0]: no directory 'mods/fix-qwen3-coder-next' "
    "with a run.sh\n"
    "hint: this registry checkout (/tmp/x/cache/registries/tmp-x-spark-arena-recipe-registry-b5138f1e) has no "
    "official-mods/ directory; registry 'eugr' is not downloaded: run `sparkrun registry update eugr`\n"
)
TOO_FEW = (
    "error: minimax-m3-v0-nvfp4-4x needs 8 hosts (tensor_parallel 8 x pipeline_parallel 1; one GPU per host), "
    "but cluster testbed gives 4\nhint: give 8 hosts with -H, or lower --tp\n"
)
NODE_RANGE = (
    "error: qwen-38-27b-fp8-eugr-leader: tensor_parallel 4 x pipeline_parallel 1 needs 4 hosts, but the recipe "
    "allows at most 1\n"
)
UNKNOWN_RUNTIME = (
    "error: unknown runtime 'ds4-cuda': no installed plugin provides it\n"
    "hint: installed runtimes: atlas, eugr-vllm, llama-cpp, modular-max, sglang, tokenary, trtllm, vllm-distributed\n"
)


def pre_exec_failure(status: int, output: str, label: str = "pre_exec[1]") -> str:
    return (
        f"starting sparkrun_0b9a_head@10.213.0.11\nerror: 10.213.0.11: {label}: exited with status {status}\n"
        + "".join(f"  | {line}\n" for line in output.splitlines())
        + "hint: see the hook's output above\n"
    )


def failed(code: int, stderr: str, **kw: object) -> Verdict:
    return classify(RunRecord(code, "", stderr, 0.4, **kw))  # type: ignore[arg-type]


def test_a_ready_job_that_was_stopped_with_nothing_left_is_ready() -> None:
    verdict = classify(RunRecord(0, READY_JSON, PROGRESS, 3.1))
    assert verdict == Verdict("ready", None, "http://10.213.0.11:8000/v1")


def test_ready_but_containers_left_after_stop_is_unexpected_and_names_them() -> None:
    verdict = classify(RunRecord(0, READY_JSON, PROGRESS, 3.1, leftovers=("10.213.0.11: sparkrun_x_solo (exited)",)))
    assert verdict.status == "unexpected"
    assert "left behind: 10.213.0.11: sparkrun_x_solo (exited)" in verdict.details


def test_ready_but_stop_failed_is_unexpected() -> None:
    verdict = classify(RunRecord(0, READY_JSON, PROGRESS, 3.1, stop_error="exit 6: 10.213.0.12: unreachable"))
    assert verdict.status == "unexpected" and "stopping it failed" in verdict.line


def test_exit_0_without_a_ready_job_is_unexpected() -> None:
    not_ready = json.dumps({"job": "abc", "ready": False})
    assert classify(RunRecord(0, not_ready, "", 1.0)).status == "unexpected"
    assert classify(RunRecord(0, "not json", "", 1.0)).status == "unexpected"


@pytest.mark.parametrize(
    ("code", "stderr", "reason"),
    [
        (3, MODS, "mods-not-added"),
        (3, TOO_FEW, "too-few-hosts"),
        (3, NODE_RANGE, "node-range"),
        (
            3,
            "error: x: the recipe needs at least 2 nodes, but tensor_parallel 1 x pipeline_parallel 1 = 1\n",
            "node-range",
        ),
        (3, UNKNOWN_RUNTIME, "unknown-runtime"),
        (5, pre_exec_failure(127, "bash: line 7: curl: command not found"), "hook-needs-real-engine"),
        (
            5,
            pre_exec_failure(127, "bash: line 10: /opt/vllm/.venv/bin/python: No such file or directory"),
            "hook-needs-real-engine",
        ),
    ],
)
def test_each_documented_failure_is_expected_with_its_reason(code: int, stderr: str, reason: str) -> None:
    verdict = failed(code, stderr)
    assert (verdict.status, verdict.reason) == ("expected", reason)
    assert verdict.line == parse_error(stderr).line  # type: ignore[union-attr]
    assert verdict.what


def test_the_missing_program_is_named() -> None:
    verdict = failed(5, pre_exec_failure(127, "+ mkdir -p /x\nbash: line 7: curl: command not found"))
    assert verdict.what == "pre_exec[1]: curl: not in the stand-in image"


def test_a_post_exec_hook_calling_a_program_the_image_lacks_is_expected() -> None:
    verdict = failed(5, pre_exec_failure(127, "bash: line 1: curl: command not found", label="post_exec[0]"))
    assert (verdict.status, verdict.reason) == ("expected", "hook-needs-real-engine")


SHA_HOOK = (
    "echo 'abc0d2 /cache/huggingface/hub/models--deepseek-ai--DeepSeek-V4-Flash-0731/snapshots/9e16/enc.py' "
    "| sha256sum -c -"
)


def test_a_hook_that_reads_the_models_files_fails_as_expected_whatever_its_status() -> None:
    stderr = pre_exec_failure(1, "sha256sum: WARNING: 1 of 1 computed checksums did NOT match")
    verdict = classify(RunRecord(5, "", stderr, 5.3, hooks=(("pre_exec[0]", "mkdir -p /x"), ("pre_exec[1]", SHA_HOOK))))
    assert (verdict.status, verdict.reason) == ("expected", "hook-needs-real-engine")
    assert "models--deepseek-ai--DeepSeek-V4-Flash-0731" in verdict.what


def test_the_model_path_must_be_in_the_hook_that_failed() -> None:
    stderr = pre_exec_failure(1, "sha256sum: WARNING: 1 of 1 computed checksums did NOT match")
    record = RunRecord(5, "", stderr, 5.3, hooks=(("pre_exec[0]", SHA_HOOK), ("pre_exec[1]", "false")))
    assert classify(record).status == "unexpected"


EAGLE = "styles01+sparkrun-recipes/recipes/qwen-38-27b-nvfp4-eagle-sglang.yaml"
ENGINE_USAGE = (
    "error: 10.213.0.11: start: the engine exited during start-up (exited 2)\n"
    "  | usage: launch_server.py [-h] --model-path MODEL_PATH [options]\n"
    "  | launch_server.py: error: unrecognized arguments: RadixArk/Qwen3.8-27B-NVFP4\n"
    "hint: the engine's log is above\n"
)


def test_a_known_recipe_defect_is_expected_only_with_its_exact_error() -> None:
    defect = KNOWN_DEFECTS[EAGLE]
    verdict = classify(RunRecord(5, "", ENGINE_USAGE, 3.5, known_defect=defect))
    assert (verdict.status, verdict.reason, verdict.what) == ("expected", "recipe-defect", defect.expect)
    other = ENGINE_USAGE.replace("RadixArk/Qwen3.8-27B-NVFP4", "--other")
    assert classify(RunRecord(5, "", other, 3.5, known_defect=defect)).status == "unexpected"
    assert classify(RunRecord(5, "", ENGINE_USAGE, 3.5)).status == "unexpected"  # not listed: unexpected


def test_a_listed_defect_that_became_ready_is_unexpected_so_the_list_stays_true() -> None:
    verdict = classify(RunRecord(0, READY_JSON, PROGRESS, 3.1, known_defect=KnownDefect("x", "y")))
    assert verdict.status == "unexpected" and "KNOWN_DEFECTS" in verdict.line


@pytest.mark.parametrize(
    ("code", "stderr"),
    [
        # the same texts with another exit status are another error class
        (1, UNKNOWN_RUNTIME),
        (4, MODS),
        (3, pre_exec_failure(127, "bash: curl: command not found")),
        # a hook that fails on data, not on a missing program (sha256sum of a file that is not there)
        (5, pre_exec_failure(1, "sha256sum: /cache/huggingface/hub/x.py: No such file or directory")),
        # exit 127 but no program named as missing
        (5, pre_exec_failure(127, "something else went wrong")),
        # a mod that is missing although its registry is there: a broken recipe, not a registry that is not added
        (
            3,
            MODS.split("hint:", maxsplit=1)[0]
            + "hint: fix the mod's path (a directory with a run.sh, next to the recipe)\n",
        ),
        # the cluster is big enough: "needs 4 ... gives 4" cannot be too few hosts
        (3, TOO_FEW.replace("needs 8", "needs 4")),
        # failures outside the list
        (5, "error: 10.213.0.11: ready: the engine exited during start-up (exited 2)\n  | vllm: error: bad flag\n"),
        (7, "error: @x/y needs --trust to run its hooks\n"),
        (4, "error: 10.213.0.11: probe: port 8000 is already in use\nhint: stop what uses it\n"),
    ],
)
def test_anything_else_is_unexpected(code: int, stderr: str) -> None:
    verdict = failed(code, stderr)
    assert verdict.status == "unexpected" and verdict.reason is None
    assert verdict.line == f"exit {code}: {parse_error(stderr).line}"  # type: ignore[union-attr]


def test_an_expected_failure_that_left_containers_is_unexpected() -> None:
    verdict = failed(5, pre_exec_failure(127, "bash: curl: command not found"), leftovers=("10.213.0.11: c (exited)",))
    assert verdict.status == "unexpected"
    assert "left behind: 10.213.0.11: c (exited)" in verdict.details


def test_a_run_ended_by_the_wall_clock_cap_is_unexpected_with_its_last_line() -> None:
    stderr = (
        "waiting for GET /v1/models on 10.213.0.11:8000 (88.0s)\n"
        "removing the job's containers from 10.213.0.11 (interrupted)\n"
        "error: interrupted: the job's containers were removed\nhint: x\n"
    )
    verdict = classify(RunRecord(None, "", stderr, 93.2, True, cap_s=90))
    assert verdict.status == "unexpected"
    assert verdict.line == (
        "timed out: still running at the 90 s cap (last: waiting for GET /v1/models on 10.213.0.11:8000 (88.0s); "
        "then: interrupted: the job's containers were removed)"
    )


def test_a_failure_without_an_error_line_is_unexpected() -> None:
    verdict = failed(1, "Traceback (most recent call last):\nKeyError: 'x'\n")
    assert verdict.status == "unexpected" and "KeyError: 'x'" in verdict.line


def test_parse_error_reads_the_last_error_with_its_detail_and_hint() -> None:
    error = parse_error("warning: w\nerror: first\nerror: h: pre_exec[0]: exited with status 1\n  | out\nhint: h\nx\n")
    assert error is not None
    assert (error.line, error.detail, error.hint) == ("h: pre_exec[0]: exited with status 1", ("out",), "h")
    assert parse_error("no error here\n") is None


def test_reason_codes_are_unique_and_each_is_documented_in_the_recipe_readme() -> None:
    assert len(set(REASON_CODES)) == len(REASONS)
    text = README.read_text()
    assert [code for code in REASON_CODES if f"`{code}`" not in text] == []
    assert [key for key in KNOWN_DEFECTS if f"`{key}`" not in text] == []
