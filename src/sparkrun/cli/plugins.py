"""`sparkrun plugins list`: the runtime plugins found, where they come from, and any load error."""

from __future__ import annotations

import click

from sparkrun.cli.context import AppContext, pass_app
from sparkrun.errors import PartialFailure


@click.group()
def plugins() -> None:
    """Runtime plugins (entry-point group `sparkrun.runtimes`)."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--check", is_flag=True, help="Exit non-zero if any plugin failed to load.")
@pass_app
def list_plugins(app: AppContext, as_json: bool, check: bool) -> None:
    """List runtime plugins: name, source, version, load error."""
    infos = app.runtimes.infos()
    if as_json:
        app.console.json(
            [{"name": i.name, "source": i.source, "target": i.target, "ok": i.ok, "error": i.error} for i in infos]
        )
    else:
        app.console.table(
            ["RUNTIME", "SOURCE", "TARGET", "STATUS"],
            [(i.name, i.source, i.target, "ok" if i.ok else f"error: {i.error}") for i in infos],
        )
    broken = [i.name for i in infos if not i.ok]
    if check and broken:
        raise PartialFailure(f"{len(broken)} plugin(s) failed to load: {', '.join(broken)}")
