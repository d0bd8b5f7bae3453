"""`sparkrun recipe vram RECIPE`: does the recipe fit, per host? (and the same table in `show`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from sparkrun.cli.completion import complete_recipe
from sparkrun.cli.context import AppContext, pass_app
from sparkrun.cli.options import SERVE_VALUE_KEYS, serve_value_options

if TYPE_CHECKING:
    from sparkrun.distribution.memory import MemoryCheck


@click.command("vram")
@click.argument("recipe", shell_complete=complete_recipe)
@serve_value_options
@click.option("--offline", is_flag=True, help="Use only cached model metadata (no Hub request).")
@click.option("--json", "as_json", is_flag=True, help="The estimate as JSON.")
@pass_app
def vram(app: AppContext, /, recipe: str, as_json: bool, **values: Any) -> None:
    """Estimate the memory RECIPE needs on each host (weights, KV cache for max_model_len, activations, CUDA graphs,
    runtime) against a DGX Spark's budget (121.6 GiB x the memory fraction); `run` refuses a plan that does not fit
    unless --force."""
    from sparkrun.cli import run_flow  # deferred: the core loads only when a command runs

    check = app.session.vram(run_flow.recipe_input(recipe, (), values, SERVE_VALUE_KEYS))
    if as_json:
        app.console.json(check.to_json())
    else:
        app.console.out(check.text())


def show_vram(app: AppContext, recipe: str, values: dict[str, Any]) -> MemoryCheck | None:
    """For `show` (unless --no-vram): the estimate, or None (with a warning) when it cannot be made."""
    from sparkrun.cli import run_flow  # deferred: the core loads only when a command runs
    from sparkrun.errors import SparkrunError  # deferred: as above

    given = run_flow.recipe_input(recipe, (), {k: values.get(k) for k in SERVE_VALUE_KEYS} | values, SERVE_VALUE_KEYS)
    try:
        return app.session.vram(given)
    except SparkrunError as exc:  # show stays useful when the Hub cannot be asked
        app.console.warn(f"memory estimate not available: {exc.message}")
        return None
