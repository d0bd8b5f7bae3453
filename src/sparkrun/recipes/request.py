"""The runtime's input: a recipe plus resolved settings → `ServeRequest` (image, rendered command as argv, env).

- `request.command` is the recipe's rendered `command:` as argv, or None (the runtime builds the command from
  settings). A command that needs a shell arrives as `("bash", "-c", '<prelude>\\nexec "$@"', "sparkrun-serve",
  *engine_argv)` when its last statement is a plain command, else `("bash", "-c", '<script> "$@"', "sparkrun-serve")`:
  arguments a runtime appends (node rank, `-- EXTRA_ARGS`) reach the engine either way
  (`sparkrun.runtimes.base.is_shell_wrapper` recognises both).
- `request.env` is recipe env + matched overrides + `env` given here; `{config.NAME}` tokens are expanded, nothing
  else (the control machine's `$VAR`s never are; `{launch.NAME}` waits for the per-rank values).
- Image: CLI `--image` > matched override > recipe `container:` > the runtime's default.

Most callers want `resolved.resolve`, which does this and everything around it in one call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sparkrun.errors import RecipeError
from sparkrun.recipes.command_argv import command_argv
from sparkrun.recipes.model import Recipe
from sparkrun.recipes.render import render_env, render_template
from sparkrun.recipes.value_chain import Settings
from sparkrun.runtimes.base import Runtime, ServeRequest


class RuntimeLookup(Protocol):
    """What the recipe layer needs from the runtime registry (`sparkrun.plugins.RuntimeRegistry` fits)."""

    def get(self, name: str) -> Runtime: ...


def template_values(recipe: Recipe, settings: Mapping[str, Any], image: str | None) -> dict[str, Any]:
    """What `{name}` in a command may name: the settings, `model`, and `container`/`image` when known."""
    values = dict(settings)
    if image:
        values.setdefault("container", image)
        values.setdefault("image", image)
    values["model"] = recipe.model
    return values


def render_command(recipe: Recipe, settings: Mapping[str, Any], *, image: str | None = None) -> tuple[str, ...] | None:
    """The recipe's `command:` rendered and split into argv; None when the recipe has no command."""
    if recipe.command is None:
        return None
    where = recipe.where("command")
    values = template_values(recipe, settings, image)
    rendered = render_template(recipe.command, values, escapes=recipe.brace_escapes)
    if rendered.missing:
        name = rendered.missing[0]
        raise RecipeError(
            f"{where}: command: placeholder {{{name}}} names nothing (no default, -o option or runtime value)",
            hint=f"add `{name}:` under defaults:, pass -o {name}=VALUE, or write a literal brace as-is",
        )
    try:
        return command_argv(rendered.text)
    except ValueError as exc:
        raise RecipeError(f"{where}: command: cannot split into arguments: {exc}", hint="check the quoting") from exc


def choose_image(recipe: Recipe, runtime: Runtime, settings: Settings, image: str | None) -> str:
    chosen = image or settings.container or recipe.container or runtime.default_image
    if not chosen:
        raise RecipeError(
            f"{recipe.where('container')}: no container image: the recipe sets none and runtime "
            f"{runtime.name!r} has no default",
            hint="set `container:` in the recipe or pass --image",
        )
    return chosen


def render_request(
    recipe: Recipe,
    runtime: Runtime,
    settings: Settings,
    *,
    image: str | None,
    extra_args: Sequence[str],
    env: Mapping[str, str],
) -> ServeRequest:
    """The runtime's input (see the module docstring)."""
    chosen = choose_image(recipe, runtime, settings, image)
    return ServeRequest(
        model=recipe.model,
        image=chosen,
        settings=dict(settings),
        command=render_command(recipe, settings, image=chosen),
        env=render_env({**settings.env, **env}, settings),
        runtime_config=dict(recipe.runtime_config),
        extra_args=tuple(extra_args),
    )
