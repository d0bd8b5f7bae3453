"""v1 (eugr spark-vllm-docker) recipes load as v2; the deprecated topology keys become a node range."""

from __future__ import annotations

import pytest
from recipe_fakes import FakeRuntimes, recipe_from

from sparkrun.recipes.request import render_command
from sparkrun.recipes.runtime_choice import resolve_runtime_name
from sparkrun.recipes.value_chain import build_settings

V1 = """\
recipe_version: "1"
name: GLM-4.7-Flash-AWQ
description: vLLM serving GLM with a speed patch
model: cyankiwi/GLM-4.7-Flash-AWQ-4bit
cluster_only: false
solo_only: false
container: vllm-node-tf5
build_args:
  - --pre-tf
mods:
  - mods/fix-glm-4.7-flash-AWQ
defaults:
  port: 8000
  host: 0.0.0.0
  tensor_parallel: 1
  served_model_name: glm-4.7-flash
env:
command: |
  vllm serve cyankiwi/GLM-4.7-Flash-AWQ-4bit \\
      --served-model-name {served_model_name} \\
      --compilation-config '{{"level": 3, "cudagraph_mode": {{"x": 1}}}}' \\
      -tp {tensor_parallel} \\
      --host {host} \\
      --port {port}
"""


def test_v1_vllm_command_migrates_to_vllm_with_eugr_builder() -> None:
    recipe = recipe_from(V1)
    assert recipe.runtime == "vllm"
    assert resolve_runtime_name(recipe) == "vllm-distributed"  # no Ray flag: what the older tool ran
    assert recipe.builder == "eugr"
    assert recipe.runtime_config == {"build_args": ["--pre-tf"]}
    assert recipe.mods == ("mods/fix-glm-4.7-flash-AWQ",)
    assert recipe.brace_escapes
    assert dict(recipe.env) == {}
    codes = [i.code for i in recipe.issues]
    assert codes == ["deprecated-recipe-format", "deprecated-topology"]


def test_v1_doubled_braces_collapse_once_at_render() -> None:
    recipe = recipe_from(V1)
    runtime = FakeRuntimes().get("eugr-vllm")
    argv = render_command(recipe, build_settings(recipe, runtime, {}, []))
    assert argv is not None
    assert argv[argv.index("--compilation-config") + 1] == '{"level": 3, "cudagraph_mode": {"x": 1}}'
    assert argv[argv.index("--served-model-name") + 1] == "glm-4.7-flash"


def test_v1_substituted_json_is_not_unescaped_again() -> None:
    text = V1.replace("served_model_name: glm-4.7-flash", 'served_model_name: "{{a}}"')
    recipe = recipe_from(text)
    argv = render_command(recipe, build_settings(recipe, FakeRuntimes().get("eugr-vllm"), {}, []))
    assert argv is not None and argv[argv.index("--served-model-name") + 1] == "{{a}}"


def test_v2_command_with_doubled_braces_warns_and_collapses() -> None:
    text = "model: m/x\nruntime: vllm\ncommand: |\n  vllm serve {model} --cc '{{\"level\": 3}}'\n"
    recipe = recipe_from(text)
    assert [i.code for i in recipe.issues] == ["deprecated-brace-escape"]
    argv = render_command(recipe, build_settings(recipe, FakeRuntimes().get("vllm-distributed"), {}, []))
    assert argv == ("vllm", "serve", "m/x", "--cc", '{"level": 3}')


def test_v2_json_with_closing_double_braces_is_untouched() -> None:
    text = 'model: m/x\ncommand: vllm serve {model} --cc \'{"a":{"b":1}}\'\n'
    recipe = recipe_from(text)
    assert recipe.issues == () and not recipe.brace_escapes
    argv = render_command(recipe, build_settings(recipe, FakeRuntimes().get("vllm-distributed"), {}, []))
    assert argv is not None and argv[-1] == '{"a":{"b":1}}'


@pytest.mark.parametrize(
    ("lines", "low", "high"),
    [
        ("solo_only: true\n", None, 1),
        ("cluster_only: true\n", 2, None),
        ("cluster_only: true\nmin_nodes: 3\n", 3, None),
        ("mode: solo\n", None, 1),
        ("mode: cluster\n", 2, None),
        ("mode: auto\nsolo_only: false\ncluster_only: false\n", None, None),
    ],
)
def test_deprecated_topology_becomes_a_node_range(lines: str, low: int | None, high: int | None) -> None:
    recipe = recipe_from("model: m/x\n" + lines)
    assert (recipe.min_nodes, recipe.max_nodes) == (low, high)
    assert [i.code for i in recipe.issues] == ["deprecated-topology"]


@pytest.mark.parametrize(
    "lines",
    ["solo_only: true\ncluster_only: true\n", "solo_only: true\nmin_nodes: 2\n", "cluster_only: true\nmax_nodes: 1\n"],
)
def test_contradicting_topology_is_an_error(lines: str) -> None:
    recipe = recipe_from("model: m/x\n" + lines)
    assert "conflicting-topology" in [i.code for i in recipe.issues if i.severity == "error"]


COMMAND = "  vllm serve {model} -tp {tensor_parallel} --port {port}"


def _v1(command: str | None, extra: str = "") -> str:
    text = 'recipe_version: "1"\nmodel: org/m\ncontainer: vllm-node\ndefaults:\n  port: 8000\n  tensor_parallel: 2\n'
    text += extra
    return text + (f"command: |\n  {command}\n" if command is not None else "")


@pytest.mark.parametrize(
    ("command", "extra", "runtime", "builder"),
    [
        (COMMAND, "", "vllm-distributed", "eugr"),
        (COMMAND + " --distributed-executor-backend ray", "", "vllm-ray", "eugr"),
        (COMMAND + " --distributed-executor-backend=ray", "", "vllm-ray", "eugr"),
        (COMMAND + " --distributed-executor-backend {backend}", "  backend: ray\n", "vllm-ray", "eugr"),
        (COMMAND + " --distributed-executor-backend mp", "", "vllm-distributed", "eugr"),
        (None, "", "vllm-distributed", "eugr"),
        (None, "  distributed_executor_backend: ray\n", "vllm-ray", "eugr"),
        ("sglang serve --model-path {model} --tp-size {tensor_parallel} --port {port}", "", "sglang", None),
        ("python3 -m sglang.launch_server --model-path {model} --port {port}", "", "sglang", None),
        ("llama-server -hf {model} --port {port}", "", "llama-cpp", None),
    ],
)
def test_v1_runtime_is_the_one_the_command_implies_as_the_older_tool_ran_it(
    command: str | None, extra: str, runtime: str, builder: str | None
) -> None:
    recipe = recipe_from(_v1(command, extra))
    assert (resolve_runtime_name(recipe), recipe.builder) == (runtime, builder)


def test_v1_declared_runtime_is_kept() -> None:
    recipe = recipe_from(_v1(COMMAND, "").replace("container:", "runtime: eugr-vllm\ncontainer:"))
    assert (resolve_runtime_name(recipe), recipe.builder) == ("eugr-vllm", None)
