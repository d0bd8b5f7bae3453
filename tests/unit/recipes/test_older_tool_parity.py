"""Issue 14: the validator never rejects what the engine (and the older sparkrun) accepts. One constructed recipe
for each class of public recipe the older tool accepted and we refused, and the `older_tool_accepts` report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from recipe_fakes import FakeRuntimes, make_runtime, recipe_from, write

from sparkrun.cli import cli
from sparkrun.plugins import load_runtimes
from sparkrun.recipes.compat import older_tool_accepts
from sparkrun.recipes.model import Issue
from sparkrun.recipes.mods import ModDirs
from sparkrun.recipes.request import RuntimeLookup
from sparkrun.recipes.runtime_choice import infer_runtime, resolve_runtime_name
from sparkrun.recipes.show import describe
from sparkrun.recipes.validate import Report, validate_recipe


def _validate(text: str, runtimes: RuntimeLookup | None = None) -> Report:
    return validate_recipe(recipe_from(text), runtimes or load_runtimes(), mods=lambda _r: ModDirs())


# ---- class 1: a runtime no plugin here provides (TensorRT-LLM) ------------------------------------------------------
TRTLLM = """\
recipe_version: "2"
model: nvidia/Qwen3-8B-FP8
defaults: {port: 8000, tensor_parallel: 1}
command: trtllm-serve {model} --port {port} --tp_size {tensor_parallel}
"""


def test_a_trtllm_recipe_names_its_runtime_by_the_command() -> None:
    assert infer_runtime("mpirun -np 2 trtllm-llmapi-launch trtllm-serve m --port 8000") == "trtllm"
    assert resolve_runtime_name(recipe_from(TRTLLM)) == "trtllm"


def test_without_the_plugin_it_is_an_unknown_runtime_the_older_tool_has() -> None:
    report = _validate(TRTLLM, FakeRuntimes())
    assert [(i.code, i.key) for i in report.issues] == [("unknown-runtime", "runtime")]
    assert report.older_tool_accepts  # the older tool ships trtllm: only a plugin is missing here
    odd = _validate(TRTLLM.replace("trtllm-serve", "ds4-serve") + "runtime: ds4-cuda\n", FakeRuntimes())
    assert not odd.older_tool_accepts


def test_with_the_plugin_it_validates() -> None:
    runtimes = FakeRuntimes()
    runtimes.runtimes["trtllm"] = make_runtime("trtllm", image="nvcr.io/nvidia/tensorrt-llm/release:1")
    report = _validate(TRTLLM, runtimes)
    assert report.count("error") == 0 and report.runtime == "trtllm"


# ---- class 2: engine values the engine accepts -----------------------------------------------------------------------
ENGINE_VALUES = """\
recipe_version: "2"
model: Qwen/Qwen3-1.7B
runtime: vllm
defaults:
  port: "8000"
  tensor_parallel: "1"
  max_model_len: 32k
  max_num_batched_tokens: 8K
  gpu_memory_utilization: "0.9"
  kv_cache_dtype: fp8_e4m3
  enable_prefix_caching: "true"
"""


@pytest.mark.parametrize("command", ["", "command: vllm serve {model} --max-model-len {max_model_len}\n"])
def test_vllm_values_its_parser_accepts_validate_and_render(command: str) -> None:
    report = _validate(ENGINE_VALUES + command)
    assert [i.code for i in report.issues if i.code != "unmapped-default"] == []
    data = describe(recipe_from(ENGINE_VALUES + command), load_runtimes(), cli_values={}, options=())
    argv = data.ranks[0].argv
    assert argv[argv.index("--max-model-len") + 1] == "32k"


@pytest.mark.parametrize("value", ["-1", "auto", "128K", "1m", "25.6k"])
def test_vllm_max_model_len_spellings(value: str) -> None:
    assert _validate(ENGINE_VALUES.replace("32k", value)).count("error") == 0


def test_a_value_vllm_refuses_is_an_error_the_older_tool_would_have_let_through() -> None:
    report = _validate(ENGINE_VALUES.replace('"0.9"', "1.5"))
    errors = [i for i in report.issues if i.severity == "error"]
    assert [(i.code, i.key) for i in errors] == [("invalid-setting", "defaults.gpu_memory_utilization")]
    assert older_tool_accepts(errors[0]) and report.older_tool_accepts


# ---- class 3: a legacy (v1) recipe whose command asks for the Ray executor ----------------------------------------
V1_RAY = """\
recipe_version: "1"
name: qwen-ray
model: Qwen/Qwen3-1.7B
container: vllm-node
cluster_only: true
build_args: [--pre-tf]
defaults: {port: 8000, host: 0.0.0.0, tensor_parallel: 2}
command: |
  vllm serve {model} --host {host} --port {port} -tp {tensor_parallel} --distributed-executor-backend ray
"""


def test_a_v1_ray_recipe_runs_on_the_ray_executor() -> None:
    report = _validate(V1_RAY)
    assert report.count("error") == 0 and report.runtime == "vllm-ray"
    data = describe(recipe_from(V1_RAY), load_runtimes(), cli_values={}, options=())
    assert [r.role for r in data.ranks] == ["head", "worker"] and data.ranks[1].argv[:2] == ("ray", "start")


def test_a_v1_recipe_with_the_mp_backend_runs_on_vllms_own_launcher() -> None:
    text = V1_RAY.replace("--distributed-executor-backend ray", "--distributed-executor-backend mp")
    report = _validate(text)
    assert report.count("error") == 0 and report.runtime == "vllm-distributed"


# ---- the report -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("issue", "accepts"),
    [
        (Issue("error", "unresolved-placeholder", "x", key="command"), True),
        (Issue("error", "invalid-setting", "x", key="defaults.port"), True),
        (Issue("error", "invalid-type", "x", key="container"), True),
        (Issue("error", "invalid-type", "x", key="defaults"), False),
        (Issue("error", "missing-model", "x", key="model"), False),
        (Issue("warning", "newer-format", "x", key="min_sparkrun_version"), False),
        (Issue("warning", "unknown-override-selector", "x", key="overrides[0].when.x"), True),
        (Issue("error", "unsupported-hook", "x", key="pre_exec[0]"), True),
        (Issue("error", "unsupported-hook", "x", key="post_exec[0]"), False),
    ],
)
def test_older_tool_acceptance_follows_the_documented_rules(issue: Issue, accepts: bool) -> None:
    assert older_tool_accepts(issue) is accepts


def test_validate_json_reports_rule_key_line_severity_and_the_older_tools_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sparkrun.plugins.load_runtimes", FakeRuntimes)
    text = "model: m/x\nruntime: vllm\nmin_sparkrun_version: '9.1'\ncommand: vllm serve {model} --x {nope}\n"
    path = write(tmp_path / "r.yaml", text)
    result = CliRunner().invoke(cli, ["recipe", "validate", str(path), "--json"])
    data = json.loads(result.stdout)
    assert data["older_tool_accepts"] is False and data["valid"] is False
    rows = [(i["severity"], i["code"], i["key"], i["line"], i["file"], i["older_tool_accepts"]) for i in data["issues"]]
    assert rows == [
        ("error", "unresolved-placeholder", "command", 4, str(path), True),
        ("warning", "newer-format", "min_sparkrun_version", 3, str(path), False),
    ]
