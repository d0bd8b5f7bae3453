"""`include:` merging and `overrides:` selection."""

from __future__ import annotations

from pathlib import Path

import pytest
from recipe_fakes import FakeRuntimes, recipe_from, source, write

from sparkrun.errors import RecipeError
from sparkrun.recipes.load import load_recipe
from sparkrun.recipes.overrides import PlatformFacts
from sparkrun.recipes.runtime_choice import resolve_runtime_name
from sparkrun.recipes.value_chain import build_settings

BASE = """\
model: org/base
runtime: vllm
container: img/base:1
defaults:
  port: 8000
  max_model_len: 4096
  speculative_config: {method: mtp, n: 2}
  drop_me: 1
env:
  A: "1"
  B: "2"
executor_config:
  shm_size: 32gb
  ulimit: [memlock=-1]
overrides:
  - when: {tp: 2}
    defaults: {max_model_len: 2048}
metadata:
  description: base
"""


def _load(path: Path) -> object:
    return load_recipe(path, source(path), strict=False)


def test_include_deep_merges_with_null_deleting_and_atomic_defaults(tmp_path: Path) -> None:
    write(tmp_path / "base.yaml", BASE)
    child = write(
        tmp_path / "child.yaml",
        """\
include: base
model: org/child
defaults:
  speculative_config: {method: ngram}
  drop_me: null
env:
  B: null
  C: "3"
executor_config:
  ulimit: [nofile=1]
overrides:
  - when: {tp: 4}
    defaults: {max_model_len: 1024}
""",
    )
    recipe = load_recipe(child, source(child), strict=False)
    assert recipe.model == "org/child"
    assert recipe.container == "img/base:1"
    assert dict(recipe.defaults) == {"port": 8000, "max_model_len": 4096, "speculative_config": {"method": "ngram"}}
    assert dict(recipe.env) == {"A": "1", "C": "3"}
    assert dict(recipe.executor_config) == {"shm_size": "32gb", "ulimit": ["nofile=1"]}
    assert [o.when for o in recipe.overrides] == [{"tp": 2}, {"tp": 4}]
    assert [o.index for o in recipe.overrides] == [0, 1]
    assert recipe.source.include_chain == (str(child), str(tmp_path / "base.yaml"))
    assert recipe.where("overrides[1]").endswith("child.yaml:12")
    assert recipe.where("container").endswith("base.yaml:3")


def test_include_cycle_is_reported(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "include: b.yaml\nmodel: m/a\n")
    b = write(tmp_path / "b.yaml", "include: a\nmodel: m/b\n")
    with pytest.raises(RecipeError, match="cycle"):
        load_recipe(b, source(b))


def test_include_depth_is_limited(tmp_path: Path) -> None:
    for i in range(12):
        write(tmp_path / f"r{i}.yaml", f"include: r{i + 1}\nmodel: m/{i}\n")
    write(tmp_path / "r12.yaml", "model: m/end\n")
    start = tmp_path / "r0.yaml"
    with pytest.raises(RecipeError, match="deeper than 8"):
        load_recipe(start, source(start))


def test_missing_include_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", "model: m/x\ninclude: nowhere\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(path, source(path))
    assert caught.value.message.startswith(f"{path}:2: include 'nowhere'")


def _settings(text: str, cli: dict[str, object] | None = None, **kw: object) -> object:
    recipe = recipe_from(text)
    runtime = FakeRuntimes().get(resolve_runtime_name(recipe))
    return build_settings(recipe, runtime, cli or {}, [], **kw)  # type: ignore[arg-type]


OVERRIDES = """\
model: m/x
runtime: vllm
container: img/a
defaults: {max_model_len: 8192, gpu_memory_utilization: 0.8, kv: auto}
env: {E: base}
overrides:
  - when: {tp: {gte: 2}}
    defaults: {max_model_len: 4096}
    env: {E: multi}
  - when: {runtime_family: vllm, platform: dgx-spark, arch: [aarch64, x86_64], capability: {gte: "12.0"}}
    defaults: {kv: fp8}
  - when: {config: {kv: {in: [fp8]}}, memory_gb: {lt: 100}}
    defaults: {gpu_memory_utilization: 0.5}
  - when: {nodes: {gt: 3}}
    container: img/big
"""


def test_overrides_apply_in_order_and_sit_between_cli_and_defaults() -> None:
    settings = _settings(OVERRIDES, {"tensor_parallel": 2})
    assert settings["max_model_len"] == 4096  # type: ignore[index]
    assert settings["kv"] == "fp8"  # type: ignore[index]
    assert settings["gpu_memory_utilization"] == 0.8  # type: ignore[index]  # config selectors see the base chain
    assert settings.origins["max_model_len"] == "overrides[0]"  # type: ignore[attr-defined]
    assert settings.env == {"E": "multi"}  # type: ignore[attr-defined]
    assert settings.matched_overrides == (0, 1)  # type: ignore[attr-defined]
    assert settings.container is None  # type: ignore[attr-defined]


def test_platform_facts_and_node_count_select_overrides() -> None:
    small = PlatformFacts(memory_gb=64)
    settings = _settings(OVERRIDES.replace("kv: auto", "kv: fp8"), {"tensor_parallel": 4}, platform=small)
    assert settings["gpu_memory_utilization"] == 0.5  # type: ignore[index]
    assert settings.container == "img/big"  # type: ignore[attr-defined]
    solo = _settings(OVERRIDES, {})
    assert solo.matched_overrides == (1,)  # type: ignore[attr-defined]


def test_cli_beats_overrides() -> None:
    settings = _settings(OVERRIDES, {"tensor_parallel": 2, "max_model_len": 1000})
    assert settings["max_model_len"] == 1000  # type: ignore[index]


@pytest.mark.parametrize(
    ("entry", "code_key"),
    [
        ("- when: {tp: 2}\n    defaults: {port: 9000}\n", "overrides[0].defaults.port"),
        ("- when: {tp: 2}\n    defaults: {tensor_parallel: 4}\n", "overrides[0].defaults.tensor_parallel"),
        ("- when: {tp: 2}\n    defaults: {served_model_name: x}\n", "overrides[0].defaults.served_model_name"),
        ("- defaults: {a: 1}\n", "overrides[0].when"),
        ("- when: {tp: 2}\n    command: x\n", "overrides[0].command"),
    ],
)
def test_invalid_overrides_are_errors_naming_the_key(entry: str, code_key: str) -> None:
    recipe = recipe_from("model: m/x\noverrides:\n  " + entry)
    errors = [i for i in recipe.issues if i.severity == "error"]
    assert [i.code for i in errors] == ["invalid-override"]
    assert errors[0].key == code_key


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ("- when: {colour: red}\n    defaults: {a: 1}\n", "overrides[0].when.colour"),
        ("- when: {tp: {about: 2}}\n    defaults: {a: 1}\n", "overrides[0].when.tp"),
    ],
)
def test_unknown_selectors_warn_and_the_override_never_applies(entry: str, key: str) -> None:
    recipe = recipe_from("model: m/x\nruntime: vllm\ndefaults: {a: 0}\noverrides:\n  " + entry)
    assert [(i.severity, i.code, i.key) for i in recipe.issues] == [("warning", "unknown-override-selector", key)]
    settings = build_settings(recipe, FakeRuntimes().get("vllm-distributed"), {"tensor_parallel": 2}, [])
    assert settings["a"] == 0 and settings.matched_overrides == ()
