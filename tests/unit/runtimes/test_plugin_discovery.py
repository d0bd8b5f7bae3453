"""Third-party runtime plugins: the example plugin is found with its own distribution as source; the broken one is
reported with its error and breaks nothing else; SPARKRUN_PLUGINS restricts loading.

Both plugins are separate distributions under tests/plugins/, installed next to sparkrun by the Makefile
(`pip install -e tests/plugins/sparkrun-example-runtime -e tests/plugins/sparkrun-broken-runtime`).
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, distribution

import pytest
from click.testing import CliRunner
from runtime_cases import request, topology

from sparkrun.cli import cli
from sparkrun.errors import PluginError, RecipeError
from sparkrun.plugins import load_runtimes
from sparkrun.runtimes.base import RankSpec

BUILTINS = [
    "atlas",
    "eugr-vllm",
    "llama-cpp",
    "modular-max",
    "sglang",
    "tokenary",
    "trtllm",
    "vllm-distributed",
    "vllm-ray",
]
BROKEN_ERROR = "RuntimeError: sparkrun-broken-runtime fails to import on purpose (test fixture)"


@pytest.fixture(autouse=True)
def _plugins_installed() -> None:
    for name in ("sparkrun-example-runtime", "sparkrun-broken-runtime"):
        try:
            distribution(name)
        except PackageNotFoundError:
            pytest.fail(f"{name} is not installed: pip install -e tests/plugins/{name} (the Makefile's install does)")


def test_example_plugin_is_discovered_with_its_distribution_as_source() -> None:
    infos = {info.name: info for info in load_runtimes().infos()}
    example = infos["example-vllm"]
    assert (example.source, example.target) == (
        "sparkrun-example-runtime 0.1.0",
        "sparkrun_example_runtime:ExampleVllmRuntime",
    )
    assert example.ok
    assert example.description == "Example plugin: vLLM on a single host"
    assert infos["vllm-ray"].source.startswith("sparkrun ")


def test_broken_plugin_is_reported_and_the_others_still_load() -> None:
    registry = load_runtimes()
    broken = {info.name: info for info in registry.infos()}["broken-runtime"]
    assert (broken.ok, broken.error, broken.source) == (False, BROKEN_ERROR, "sparkrun-broken-runtime 0.1.0")
    assert registry.names() == sorted([*BUILTINS, "example-vllm"])
    assert registry.get("vllm-distributed").name == "vllm-distributed"
    with pytest.raises(PluginError, match="installed but failed to load: RuntimeError"):
        registry.get("broken-runtime")


def test_plugins_list_json_shows_both() -> None:
    result = CliRunner().invoke(cli, ["plugins", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["broken-runtime"] == {
        "name": "broken-runtime",
        "source": "sparkrun-broken-runtime 0.1.0",
        "target": "sparkrun_broken_runtime:BrokenRuntime",
        "ok": False,
        "error": BROKEN_ERROR,
    }
    assert rows["example-vllm"]["ok"] is True
    assert all(rows[name]["ok"] for name in BUILTINS)


def test_sparkrun_plugins_restricts_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARKRUN_PLUGINS", "example-vllm, vllm-ray")
    registry = load_runtimes()
    assert [info.name for info in registry.infos()] == ["example-vllm", "vllm-ray"]
    assert registry.names() == ["example-vllm", "vllm-ray"]
    with pytest.raises(PluginError, match="unknown runtime 'sglang'"):
        registry.get("sglang")


def test_sparkrun_plugins_naming_the_broken_one_reports_only_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARKRUN_PLUGINS", "broken-runtime")
    registry = load_runtimes()
    assert [(info.name, info.error) for info in registry.infos()] == [("broken-runtime", BROKEN_ERROR)]
    assert registry.names() == []


def test_example_plugin_builds_a_solo_spec_and_refuses_two_nodes() -> None:
    runtime = load_runtimes().get("example-vllm")
    req = request({"served_model_name": "qwen3"}, env={"A": "1"}, extra_args=("--enforce-eager",))
    assert runtime.build(req, topology(1)) == (
        RankSpec(
            rank=0,
            role="solo",
            argv=(
                *("vllm", "serve", "Qwen/Qwen3-1.7B", "--host", "0.0.0.0", "--port", "8000"),
                *("--served-model-name", "qwen3", "--max-model-len", "8192", "--gpu-memory-utilization", "0.8"),
                "--enforce-eager",
            ),
            env={
                "A": "1",
                "NODE_IP": "127.0.0.1",
                "VLLM_HOST_IP": "127.0.0.1",
                "SPARKRUN_HEAD_IP": "127.0.0.1",
                "SPARKRUN_NODE_RANK": "0",
                "SPARKRUN_NUM_NODES": "1",
            },
            api_port=8000,
        ),
    )
    with pytest.raises(RecipeError, match="runs on one host, but this launch has 2"):
        runtime.build(req, topology(2))
