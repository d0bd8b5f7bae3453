"""Fuzzing: whatever the recipe text, loading, validating and rendering raise nothing but `SparkrunError`."""

from __future__ import annotations

import os
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from recipe_fakes import FakeRuntimes

from sparkrun.errors import SparkrunError
from sparkrun.recipes.command_argv import command_argv
from sparkrun.recipes.load import load_text
from sparkrun.recipes.model import RecipeSource
from sparkrun.recipes.render import render_hook, render_template
from sparkrun.recipes.request import render_command
from sparkrun.recipes.runtime_choice import resolve_runtime_name
from sparkrun.recipes.trust import gated_items
from sparkrun.recipes.validate import validate_recipe
from sparkrun.recipes.value_chain import build_settings

KEYS = [
    "recipe_version",
    "model",
    "runtime",
    "container",
    "min_nodes",
    "max_nodes",
    "mode",
    "solo_only",
    "cluster_only",
    "defaults",
    "env",
    "command",
    "pre_exec",
    "post_exec",
    "post_commands",
    "mods",
    "include",
    "overrides",
    "executor_config",
    "metadata",
    "runtime_config",
    "name",
    "description",
    "stop_after_post",
    "min_sparkrun_version",
    "cluster_config",
    "unknown_key",
]
TEMPLATE_BITS = [
    "{model}",
    "{port}",
    "{x}",
    "{{",
    "}}",
    "{",
    "}",
    "${A}",
    "$B",
    "'",
    '"',
    "\\\n",
    ";",
    "|",
    " ",
    "vllm serve",
    "--port",
    '{"a": 1}',
    "{a.b}",
    "~/",
    "#",
    "exec ",
    "X=1 ",
    "\n",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.floats(allow_nan=False, width=32),
    st.text(max_size=20),
    st.sampled_from(TEMPLATE_BITS),
)
templates = st.lists(st.sampled_from(TEMPLATE_BITS) | st.text(max_size=5), max_size=12).map("".join)
values = st.recursive(
    scalars | templates,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["port", "x", "a", "tp", "when", "defaults", "command", "b", "gte", "in"]),
            inner,
            max_size=3,
        )
    ),
    max_leaves=12,
)
EXAMPLES = int(os.environ.get("SPARKRUN_FUZZ_EXAMPLES", "300"))
documents = st.dictionaries(st.sampled_from(KEYS), values, max_size=10)


def _exercise(text: str) -> None:
    source = RecipeSource(name="fuzz", kind="registry", trusted=False, registry="fuzz")
    try:
        recipe = load_text(text, source, strict=False)
        runtimes = FakeRuntimes()
        validate_recipe(recipe, runtimes)
        gated_items(recipe)
        runtime = runtimes.get(resolve_runtime_name(recipe))
        current = build_settings(recipe, runtime, {"port": 9000}, ["x=1", "a.b={}"])
        render_command(recipe, current)
        for entries in recipe.hooks.values():
            for entry in entries:
                if isinstance(entry, str):
                    render_hook(entry, current, {"head_ip": "h"})
    except SparkrunError:
        pass


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_structured_documents_only_raise_sparkrun_errors(doc: dict[str, Any]) -> None:
    _exercise(yaml.safe_dump(doc, allow_unicode=True))


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    st.text(max_size=200)
    | st.lists(
        st.sampled_from(
            ["a: ", "- ", "{", "}", "[", ":", "\n", "  ", "&x", "*x", "!!python/object", "model: m", "include: x"]
        ),
        max_size=20,
    ).map("".join)
)
def test_arbitrary_text_only_raises_sparkrun_errors(text: str) -> None:
    _exercise(text)


@settings(max_examples=EXAMPLES, deadline=None)
@given(templates, st.dictionaries(st.sampled_from(["x", "port", "model", "a"]), values, max_size=4))
def test_renderer_never_crashes(template: str, values_: dict[str, Any]) -> None:
    try:
        rendered = render_template(template, values_, escapes=True)
        command_argv(rendered.text)
    except SparkrunError:
        pass
    except ValueError as exc:  # shlex: unbalanced quotes (wrapped into RecipeError by render_command)
        assert "quotation" in str(exc) or "escape" in str(exc)
