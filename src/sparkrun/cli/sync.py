"""`sparkrun sync RECIPE`: put the recipe's model and image on the hosts (every selected host), nothing launched."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from sparkrun.cli.completion import complete_recipe
from sparkrun.cli.context import AppContext, pass_app, target
from sparkrun.cli.options import SERVE_VALUE_KEYS, hosts_options, serve_value_options

if TYPE_CHECKING:
    from sparkrun.distribution.report import SyncReport


@click.command()
@click.argument("recipe", shell_complete=complete_recipe)
@hosts_options
@serve_value_options
@click.option(
    "--download",
    type=click.Choice(["auto", "control", "head"]),
    help="Where a model missing everywhere is downloaded (default: the cluster's `download:`, else auto).",
)
@click.option("--verify", is_flag=True, help="Hash every file again, even those checked before.")
@click.option("--offline", is_flag=True, help="Nothing from the Hub or a registry: copy only what hosts have.")
@click.option("-n", "--dry-run", is_flag=True, help="Show what the recipe needs and the steps; no connection.")
@click.option("--json", "as_json", is_flag=True, help="The result as JSON on stdout, progress as JSON lines on stderr.")
@pass_app
def sync(app: AppContext, /, recipe: str, dry_run: bool, as_json: bool, **values: Any) -> None:
    """Copy RECIPE's model and image to every host: fetched once, then host to host down a chain.

    Only missing or unfinished files move (an interrupted copy resumes); a host that fails is reported (exit 6) and
    the others complete. `sparkrun run` does the same before it starts the containers.
    """
    from sparkrun.cli import run_flow  # deferred: the core loads only when a command runs

    given = run_flow.recipe_input(recipe, (), values, SERVE_VALUE_KEYS)
    where = target(values["hosts"], values["hosts_file"], values["cluster"])
    app.console.json_events = as_json
    try:
        options = {"download": values["download"], "verify": values["verify"], "dry_run": dry_run}
        report = app.session.sync(given, where, **options)
    finally:
        app.console.finish()
    if as_json:
        app.console.json(report.to_json())
    else:
        print_report(app, report)
    report.check()  # exit 6 when some hosts failed (listed above), 4 when all did


def print_report(app: AppContext, report: SyncReport) -> None:
    from sparkrun.cli.transfer_view import human_bytes  # deferred: formatting only

    if report.plan is not None:  # a dry-run
        for index, (phase, steps) in enumerate(report.plan.phases(), start=1):
            for step in steps:
                app.console.out(f"  {index}. [{phase}] {step.summary}")
    rows = []
    for item in report.items:
        for o in item.hosts.values():
            state = f"FAILED: {o.error}" if o.error else "ok"
            rows.append((o.host, item.item, human_bytes(o.moved), human_bytes(o.skipped), o.route, state))
    if rows:
        app.console.table(["HOST", "WHAT", "MOVED", "ALREADY THERE", "FROM", "STATE"], rows)
    for note in report.notes:
        app.console.out(f"note: {note}")
