"""The bundled recipes: real engine flags only, valid, and runnable through the real runtime plugins."""

from __future__ import annotations

from pathlib import Path

import pytest
from recipe_fakes import FakeRuntimes

from sparkrun.errors import PluginError
from sparkrun.plugins import load_runtimes
from sparkrun.recipes.lookup import Resolver, bundled_dir
from sparkrun.recipes.model import Recipe
from sparkrun.recipes.registry import RegistryStore
from sparkrun.recipes.request import render_command
from sparkrun.recipes.runtime_choice import resolve_runtime_name
from sparkrun.recipes.show import describe
from sparkrun.recipes.validate import validate_recipe
from sparkrun.recipes.value_chain import build_settings

FLAG_LISTS = Path(__file__).resolve().parents[1] / "runtimes" / "data"
ENGINE = {  # recipe -> (flag list, argv prefix)
    "qwen3-1.7b-vllm": ("vllm-serve.txt", ("vllm", "serve", "Qwen/Qwen3-1.7B")),
    "qwen3-1.7b-vllm-ray": ("vllm-serve.txt", ("vllm", "serve", "Qwen/Qwen3-1.7B")),
    "qwen3-1.7b-sglang": ("sglang-serve.txt", ("sglang", "serve")),
    "qwen3-1.7b-llama-cpp": ("llama-server.txt", ("llama-server",)),
}


def _flags(list_name: str) -> set[str]:
    flags: set[str] = set()
    for line in (FLAG_LISTS / list_name).read_text().splitlines():
        if line.startswith("-"):
            flags.update(word for word in line.split() if word.startswith("-"))
    return flags


def _load(name: str) -> Recipe:
    return Resolver(store=RegistryStore([])).load(name)


def test_every_bundled_recipe_is_covered() -> None:
    directory = bundled_dir()
    assert directory is not None
    assert sorted(p.stem for p in directory.glob("*.yaml")) == sorted(ENGINE)


@pytest.mark.parametrize("name", sorted(ENGINE))
def test_bundled_recipe_uses_only_real_engine_flags(name: str) -> None:
    list_name, prefix = ENGINE[name]
    recipe = _load(name)
    runtime = FakeRuntimes().get(resolve_runtime_name(recipe))
    argv = render_command(recipe, build_settings(recipe, runtime, {}, []))
    assert argv is not None and argv[: len(prefix)] == prefix
    known = _flags(list_name)
    used = [token for token in argv if token.startswith("-")]
    assert used and [flag for flag in used if flag not in known] == []


@pytest.mark.parametrize("name", sorted(ENGINE))
def test_bundled_recipe_validates_without_any_issue(name: str) -> None:
    assert validate_recipe(_load(name), FakeRuntimes()).issues == ()


@pytest.mark.parametrize("name", sorted(ENGINE))
@pytest.mark.parametrize("nodes", [1, 2])
def test_bundled_recipe_builds_with_the_real_runtime_plugins(name: str, nodes: int) -> None:
    runtimes = load_runtimes()
    recipe = _load(name)
    try:
        runtimes.get(resolve_runtime_name(recipe))
    except PluginError as exc:  # the plugins are another package's job; only skip when they are absent
        pytest.skip(str(exc))
    report = validate_recipe(recipe, runtimes)
    assert [i.line() for i in report.issues if i.severity == "error"] == []
    data = describe(recipe, runtimes, cli_values={"tensor_parallel": nodes}, options=(), nodes=nodes)
    assert len(data.ranks) == nodes
