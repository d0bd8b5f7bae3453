"""Loading: errors name file, line and key path; unknown keys are kept; every documented field is accepted."""

from __future__ import annotations

from pathlib import Path

import pytest
from recipe_fakes import SIMPLE, recipe_from, source, write

from sparkrun.errors import RecipeError
from sparkrun.recipes.load import load_recipe
from sparkrun.recipes.model import KNOWN_KEYS


def test_type_error_names_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path / "recipe.yaml", "model: org/m\ndefaults:\n  host: 0.0.0.0\n  port: abc\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(path, source(path))
    assert caught.value.message == f"{path}:4: defaults.port: expected a whole number (1..65535), got 'abc'"


def test_lenient_load_collects_every_error(tmp_path: Path) -> None:
    text = "model: org/m\nmin_nodes: zero\ndefaults:\n  tensor_parallel: -1\n  gpu_memory_utilization: 3\nenv: []\n"
    recipe = recipe_from(text, path=write(tmp_path / "r.yaml", text))
    keys = sorted(i.key or "" for i in recipe.issues if i.severity == "error")
    assert keys == ["defaults.tensor_parallel", "env", "min_nodes"]  # engine values are typed by the validator
    assert all(i.where and i.where.startswith(str(tmp_path)) for i in recipe.issues)


def test_invalid_yaml_is_one_line_with_line_number(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", "model: a\ndefaults: [1, 2\ncommand: x\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(path, source(path))
    assert caught.value.message.startswith(f"{path}:")
    assert "invalid YAML" in caught.value.message
    assert "\n" not in caught.value.message


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "", "42\n"])
def test_non_mapping_documents_are_refused(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "r.yaml", text)
    with pytest.raises(RecipeError, match=r"r\.yaml"):
        load_recipe(path, source(path))


def test_missing_model_is_an_error() -> None:
    recipe = recipe_from("runtime: vllm\ncommand: vllm serve x\n")
    assert [i.code for i in recipe.issues if i.severity == "error"] == ["missing-model"]


def test_unknown_top_level_keys_go_to_runtime_config_with_a_warning() -> None:
    recipe = recipe_from(SIMPLE + "volumes: [/a:/b]\ndraft_model: x/y\nruntime_config:\n  draft_model: keep\n")
    assert recipe.runtime_config == {"draft_model": "keep", "volumes": ["/a:/b"]}
    assert recipe.unknown_keys == ("volumes", "draft_model")
    warning = next(i for i in recipe.issues if i.code == "unknown-top-level-key")
    assert warning.severity == "warning" and warning.key == "volumes"


def test_every_documented_field_is_accepted_without_warnings() -> None:
    text = SIMPLE + "".join(
        f"{key}: null\n" for key in sorted(KNOWN_KEYS - {"model", "recipe_version", "runtime", "defaults", "command"})
    )
    recipe = recipe_from(text)
    assert [i.code for i in recipe.issues] == ["deprecated-topology"]  # solo_only / cluster_only / mode
    assert recipe.runtime_config == {}


def test_description_falls_back_to_metadata() -> None:
    recipe = recipe_from(SIMPLE + "metadata:\n  description: from metadata\n")
    assert recipe.description == "from metadata"


def test_hooks_accept_strings_and_mappings_and_reject_others() -> None:
    text = SIMPLE + "pre_exec:\n  - echo hi\n  - {command: echo there, timeout: 5}\n  - {copy: a, dest: /b}\n  - 3\n"
    recipe = recipe_from(text)
    assert len(recipe.pre_exec) == 4
    errors = [(i.code, i.key) for i in recipe.issues if i.severity == "error"]
    assert errors == [("unsupported-hook", "pre_exec[2]"), ("invalid-hook", "pre_exec[3]")]


def test_env_values_become_strings() -> None:
    recipe = recipe_from(SIMPLE + "env:\n  A: 1\n  B: true\n  C: ~\n  D: x\n")
    assert dict(recipe.env) == {"A": "1", "B": "true", "D": "x"}


def test_node_range_must_be_ordered() -> None:
    recipe = recipe_from(SIMPLE + "min_nodes: 3\nmax_nodes: 2\n")
    assert [i.code for i in recipe.issues if i.severity == "error"] == ["invalid-node-range"]


@pytest.mark.parametrize("version", ['"2"', '"3"', '"4"', "2", "'2'", "4.0"])
def test_versions_two_and_later_read_as_v2(version: str) -> None:
    recipe = recipe_from(SIMPLE.replace('"2"', version))
    assert recipe.runtime == "vllm" and not recipe.brace_escapes
    assert [i for i in recipe.issues if i.severity == "error"] == []


def test_unknown_recipe_version_is_an_error() -> None:
    recipe = recipe_from(SIMPLE.replace('"2"', '"banana"'))
    assert [i.code for i in recipe.issues] == ["invalid-recipe-version"]


def test_strict_load_raises_the_first_error_with_hint() -> None:
    with pytest.raises(RecipeError) as caught:
        recipe_from(SIMPLE + "stop_after_post: maybe\n", strict=True)
    assert "stop_after_post: expected true or false" in caught.value.message
    assert caught.value.hint


def test_keys_written_twice_are_warned_and_the_last_wins(tmp_path: Path) -> None:
    text = "model: a/b\ndefaults:\n  port: 1\n  port: 2\nmodel: c/d\n"
    recipe = recipe_from(text, path=write(tmp_path / "dup.yaml", text))
    assert (recipe.model, recipe.defaults["port"]) == ("c/d", 2)
    assert [i.line() for i in recipe.issues] == [
        f"{tmp_path}/dup.yaml:4: defaults.port: written more than once; this later value wins",
        f"{tmp_path}/dup.yaml:5: model: written more than once; this later value wins",
    ]
    assert recipe.where("model") == f"{tmp_path}/dup.yaml:5"
