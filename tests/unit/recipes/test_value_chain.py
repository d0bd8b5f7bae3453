"""The value chain: CLI and -o > overrides > recipe defaults > runtime defaults; None never shadows."""

from __future__ import annotations

from typing import Any

import pytest
from recipe_fakes import FakeRuntimes, recipe_from

from sparkrun.errors import UsageError
from sparkrun.recipes.value_chain import build_settings, parse_options, parse_value, resolve_layers

RECIPE = """\
model: org/m
runtime: vllm
defaults:
  port: 8001
  max_model_len: 4096
  speculative_config: '{"method": "mtp", "num_speculative_tokens": 2}'
  nested: {a: 1, b: {c: 2}}
"""


def _build(cli: dict[str, Any], options: list[str]) -> Any:
    recipe = recipe_from(RECIPE)
    return build_settings(recipe, FakeRuntimes().get("vllm-distributed"), cli, options)


def test_none_in_a_higher_layer_never_shadows_a_lower_one() -> None:
    settings = _build({"port": None, "max_model_len": None, "tensor_parallel": None}, [])
    assert settings["port"] == 8001
    assert settings["max_model_len"] == 4096
    assert "tensor_parallel" not in settings
    assert settings.origins["port"] == "recipe"


def test_layers_in_order_with_origins() -> None:
    settings = _build({"max_model_len": 2048}, ["gpu_memory_utilization=0.5"])
    assert settings["max_model_len"] == 2048 and settings.origins["max_model_len"] == "cli"
    assert settings["gpu_memory_utilization"] == 0.5 and settings.origins["gpu_memory_utilization"] == "cli"
    assert settings["host"] == "0.0.0.0" and settings.origins["host"] == "runtime vllm-distributed"
    assert settings["model"] == "org/m" and settings.origins["model"] == "builtin"


def test_dedicated_flag_beats_option_for_the_same_key() -> None:
    assert _build({"port": 9000}, ["port=9001"])["port"] == 9000


def test_dotted_option_changes_one_field_of_a_json_string_default() -> None:
    settings = _build({}, ["speculative_config.num_speculative_tokens=3"])
    assert settings["speculative_config"] == '{"method":"mtp","num_speculative_tokens":3}'


def test_dotted_option_merges_per_leaf_in_a_mapping_default() -> None:
    settings = _build({}, ["nested.b.d=4", "nested.a=9"])
    assert settings["nested"] == {"a": 9, "b": {"c": 2, "d": 4}}
    assert settings.origins["nested.b.c"] == "recipe" and settings.origins["nested.b.d"] == "cli"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("8192", 8192),
        ("-3", -3),
        ("0.85", 0.85),
        ("1e-3", 0.001),
        ("true", True),
        ("False", False),
        ('{"a": [1, 2]}', {"a": [1, 2]}),
        ("[1, 2]", [1, 2]),
        ('"quoted"', "quoted"),
        ("fp8", "fp8"),
        ("{not json", "{not json"),
        ("nan", "nan"),
        ("", ""),
    ],
)
def test_option_values_are_typed(text: str, value: Any) -> None:
    assert parse_value(text) == value


def test_options_fold_dotted_keys_and_normalise_dashes() -> None:
    assert parse_options(["a.b=1", "a.c=x", "max-model-len=5"]) == {"a": {"b": 1, "c": "x"}, "max_model_len": 5}


@pytest.mark.parametrize("bad", ["novalue", "=1", "a..b=1", ".a=1", "a b=1"])
def test_malformed_options_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError, match="key=value"):
        parse_options([bad])


def test_resolve_keeps_false_and_zero_and_strips_none_recursively() -> None:
    settings = resolve_layers(
        [("cli", {"flag": False, "n": 0, "m": {"x": None}}), ("recipe", {"flag": True, "n": 5, "m": {"x": 1}})]
    )
    assert dict(settings) == {"flag": False, "n": 0, "m": {"x": 1}}


def test_scalar_in_higher_layer_replaces_a_mapping_below() -> None:
    settings = resolve_layers([("cli", {"k": "flat"}), ("recipe", {"k": {"a": 1}})])
    assert settings["k"] == "flat"
