"""`resolve`: one call from a loaded recipe and the command line to everything `run`, `--dry-run` and `show` need."""

from __future__ import annotations

from pathlib import Path

import pytest
from recipe_fakes import SIMPLE, FakeRuntimes, recipe_from, write

from sparkrun.cli.options import SERVE_VALUE_KEYS
from sparkrun.errors import PluginError, RecipeError
from sparkrun.recipes.mods import ModDirs
from sparkrun.recipes.readiness import Readiness
from sparkrun.recipes.resolved import NodeRangeError, node_count, preview_hosts, preview_topology, resolve
from sparkrun.recipes.settings_keys import CLI_SETTING_KEYS, SPARKRUN_SETTING_KEYS
from sparkrun.recipes.show import describe

GMU = SIMPLE.replace("--port {port}", "--port {port} --gpu-memory-utilization {gpu_memory_utilization}")
HOOKS = 'pre_exec: ["echo {served_model_name}"]\npost_commands: ["curl {base_url}"]\nstop_after_post: true\n'


def test_one_call_resolves_runtime_settings_request_nodes_readiness_and_hooks() -> None:
    recipe = recipe_from(SIMPLE + "readiness: {port_timeout_s: 60, inference: false}\n" + HOOKS)
    resolved = resolve(
        recipe,
        FakeRuntimes(),
        cli_values={"port": 9000, "tensor_parallel": None},
        options=["max_model_len=2048"],
        image="img/cli",
        extra_args=["--enforce-eager"],
        env={"A": "1"},
        mods=lambda _r: ModDirs(),
    )
    assert resolved.runtime_name == "vllm-distributed" and resolved.runtime.name == "vllm-distributed"
    assert resolved.settings["port"] == 9000 and resolved.settings.origin("port") == "cli"
    assert resolved.settings.origin("max_model_len") == "cli" and resolved.settings.origin("host") == "recipe"
    assert resolved.request.image == "img/cli" and resolved.request.extra_args == ("--enforce-eager",)
    assert resolved.request.command == (
        "vllm",
        "serve",
        "org/model",
        "--port",
        "9000",
        "--host",
        "0.0.0.0",
        "--max-model-len",
        "2048",
    )
    assert dict(resolved.request.env) == {"A": "1"}
    assert (resolved.nodes, resolved.tensor_parallel, resolved.pipeline_parallel) == (1, 1, 1)
    assert resolved.readiness == Readiness(port_timeout=60, inference=False)
    assert resolved.hooks.pre_exec == ("echo {served_model_name}",) and resolved.hooks.stop_after_post
    assert resolved.render_hook(resolved.hooks.post_commands[0], {"base_url": "http://h:1/v1"}) == "curl http://h:1/v1"
    assert resolved.gated == () and resolved.warnings == ()


def test_node_count_is_tp_times_pp() -> None:
    recipe = recipe_from(SIMPLE)
    resolved = resolve(recipe, FakeRuntimes(), cli_values={"tensor_parallel": 2, "pipeline_parallel": 2})
    assert (resolved.nodes, resolved.tensor_parallel, resolved.pipeline_parallel) == (4, 2, 2)
    topology = preview_topology(resolved)
    assert topology.hosts == ("<head>", "<worker1>", "<worker2>", "<worker3>") and topology.tensor_parallel == 2


def test_node_range_errors_are_the_messages_run_prints() -> None:
    low = recipe_from(SIMPLE + "min_nodes: 2\n")
    with pytest.raises(NodeRangeError) as caught:
        node_count(low, {"tensor_parallel": 1})
    assert caught.value.message == (
        "recipe: the recipe needs at least 2 nodes, but tensor_parallel 1 x pipeline_parallel 1 = 1"
    )
    assert caught.value.hint == "pass --tp 2" and caught.value.preview == 2
    high = recipe_from(SIMPLE + "max_nodes: 1\n")
    with pytest.raises(RecipeError) as caught_high:
        resolve(high, FakeRuntimes(), cli_values={"tensor_parallel": 2})
    assert caught_high.value.message == (
        "recipe: tensor_parallel 2 x pipeline_parallel 1 needs 2 hosts, but the recipe allows at most 1"
    )


@pytest.mark.parametrize(
    ("value", "message"), [("two", "expected a whole number, got 'two'"), (0, "must be at least 1")]
)
def test_node_count_refuses_parallelism_that_is_no_count(value: object, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        node_count(recipe_from(SIMPLE), {"tensor_parallel": value})


def test_explicit_node_count_previews_without_the_range_check() -> None:
    resolved = resolve(recipe_from(SIMPLE + "max_nodes: 1\n"), FakeRuntimes(), nodes=3)
    assert resolved.nodes == 3 and preview_hosts(3) == ("<head>", "<worker1>", "<worker2>")


def test_preview_refuses_absurd_node_counts() -> None:
    with pytest.raises(RecipeError, match="more than sparkrun plans for"):
        preview_hosts(257)


def test_engine_refused_values_stop_resolution_with_file_line_and_key(tmp_path: Path) -> None:
    text = SIMPLE.replace("max_model_len: 4096", "max_model_len: 12.5K")
    recipe = recipe_from(text, path=write(tmp_path / "r.yaml", text))
    with pytest.raises(RecipeError) as caught:
        resolve(recipe, FakeRuntimes())
    assert caught.value.message.startswith(f"{tmp_path / 'r.yaml'}:7: defaults.max_model_len: vLLM reads it with")


def test_command_line_values_are_checked_too() -> None:
    with pytest.raises(RecipeError, match=r"^command line: gpu_memory_utilization: vLLM takes a fraction"):
        resolve(recipe_from(GMU), FakeRuntimes(), cli_values={"gpu_memory_utilization": 1.5})
    unused = resolve(recipe_from(SIMPLE), FakeRuntimes(), cli_values={"gpu_memory_utilization": 1.5})
    assert unused.warnings == ()  # a value that never reaches the engine is not the engine's to refuse


def test_values_sparkrun_cannot_vouch_for_are_warnings() -> None:
    text = GMU.replace("runtime: vllm", "runtime: sglang").replace(
        "  port: 8000\n", "  port: 8000\n  gpu_memory_utilization: 1.5\n"
    )
    recipe = recipe_from(text)
    resolved = resolve(recipe, FakeRuntimes())
    assert [(w.code, w.key) for w in resolved.warnings] == [("suspicious-setting", "defaults.gpu_memory_utilization")]


def test_a_missing_mod_is_reported_and_only_a_real_run_refuses_it(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", SIMPLE + "mods: [mods/fix-a, mods/nowhere]\n")
    write(tmp_path / "mods/fix-a/run.sh", "echo a\n")
    resolved = resolve(recipe_from(path.read_text(), path=path), FakeRuntimes())
    assert resolved.mods.found == (tmp_path / "mods/fix-a",)
    assert [m.name for m in resolved.mods.missing] == ["mods/nowhere"]
    with pytest.raises(RecipeError, match=r"mods\[1\]: no directory 'mods/nowhere' with a run.sh"):
        resolved.mods.require()


def test_untrusted_recipes_carry_what_needs_trust() -> None:
    recipe = recipe_from(SIMPLE + HOOKS, trusted=False, kind="registry", registry="r")
    assert [g.key for g in resolve(recipe, FakeRuntimes(), mods=lambda _r: ModDirs()).gated] == [
        "pre_exec[0]",
        "post_commands[0]",
    ]


def test_unknown_runtimes_raise_the_plugin_error() -> None:
    with pytest.raises(PluginError, match="unknown runtime 'nope'"):
        resolve(recipe_from("model: m/x\nruntime: nope\n"), FakeRuntimes())


def test_the_runtime_itself_may_be_given() -> None:
    runtime = FakeRuntimes().get("sglang")
    assert resolve(recipe_from(SIMPLE), runtime).runtime_name == "sglang"


def test_only_command_line_keys_may_come_as_flags() -> None:
    with pytest.raises(TypeError, match="host"):
        resolve(recipe_from(SIMPLE), FakeRuntimes(), cli_values={"host": "1.2.3.4"})


def test_one_settings_key_list_serves_the_cli_the_chain_and_the_validator() -> None:
    assert SERVE_VALUE_KEYS is CLI_SETTING_KEYS
    assert set(CLI_SETTING_KEYS) <= SPARKRUN_SETTING_KEYS


def test_show_goes_through_the_same_path_and_previews_refused_node_counts() -> None:
    recipe = recipe_from(SIMPLE + "max_nodes: 1\n")
    data = describe(recipe, FakeRuntimes(), cli_values={"tensor_parallel": 2}, options=(), mods=lambda _r: ModDirs())
    assert data.nodes == 1
    assert [w.code for w in data.warnings] == ["parallelism-outside-nodes"]
    assert data.warnings[0].message.startswith("run refuses this: recipe: tensor_parallel 2 x pipeline_parallel 1")
    assert data.to_json()["warnings"][0]["code"] == "parallelism-outside-nodes"
