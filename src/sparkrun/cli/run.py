"""`sparkrun run RECIPE [-- EXTRA_ARGS]`: plan, then launch, wait until it serves, and follow the logs."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from sparkrun.cli.completion import complete_recipe
from sparkrun.cli.context import AppContext, pass_app, target
from sparkrun.cli.options import SERVE_VALUE_KEYS, hosts_options, serve_value_options

if TYPE_CHECKING:
    from sparkrun.api import RunResult


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("recipe", shell_complete=complete_recipe)
@click.argument("extra_args", nargs=-1, type=click.UNPROCESSED)
@hosts_options
@serve_value_options
@click.option("-e", "--env", "env", multiple=True, metavar="KEY=VALUE", help="Container environment (repeatable).")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Extra container label (repeatable).")
@click.option("-n", "--dry-run", is_flag=True, help="Print the plan and stop; opens no connection.")
@click.option("--json", "as_json", is_flag=True, help="JSON output (the plan with --dry-run, else the outcome).")
@click.option("--markdown", is_flag=True, help="With --dry-run: the plan as Markdown (CI previews).")
@click.option("--follow/--no-follow", default=None, help="Follow the logs once ready (default: on a terminal).")
@click.option("--foreground", is_flag=True, help="Follow the logs; Ctrl-C stops the job.")
@click.option("--no-ready-wait", is_flag=True, help="Return once the containers run; skip readiness.")
@click.option("--ensure", is_flag=True, help="Reuse an identical running job instead of relaunching.")
@click.option("--no-rm", is_flag=True, help="Keep containers after a failure (for debugging).")
@click.option("--trust", is_flag=True, help="Allow hooks and isolation-breaking settings of an untrusted recipe.")
@click.option("--offline", is_flag=True, help="Nothing from the Hub or a registry; copy only what hosts have.")
@click.option("--no-sync", is_flag=True, help="Do not copy the model and image first; the engine finds them itself.")
@click.option("--force", is_flag=True, help="Launch even when the memory estimate says it cannot fit.")
@pass_app
def run(
    app: AppContext,
    /,
    recipe: str,
    extra_args: tuple[str, ...],
    hosts: str | None,
    hosts_file: str | None,
    cluster: str | None,
    dry_run: bool,
    as_json: bool,
    markdown: bool,
    follow: bool | None,
    foreground: bool,
    no_ready_wait: bool,
    ensure: bool,
    no_rm: bool,
    **values: Any,
) -> None:
    """Launch RECIPE on the hosts, wait until it serves, then follow its logs.

    Arguments after `--` are appended to the engine's serve command.
    """
    from sparkrun.cli import run_flow  # deferred: the core loads only when a command runs

    given = run_flow.recipe_input(recipe, extra_args, values, SERVE_VALUE_KEYS)
    where = target(hosts, hosts_file, cluster)
    if dry_run:
        run_flow.show_plan(app, given, where, as_json=as_json, markdown=markdown)
        return
    result = run_flow.launch(
        app, given, where, ensure=ensure, wait_ready=not no_ready_wait, keep=no_rm, hold=foreground
    )
    report(app, result, as_json=as_json)
    if foreground or (follow if follow is not None else sys.stdout.isatty()):
        run_flow.follow(app, result, stop_on_interrupt=foreground)


def report(app: AppContext, result: RunResult, *, as_json: bool) -> None:
    job = result.job
    if as_json:
        app.console.json(result.to_json())
        return
    state = "already running" if result.reused else ("ready" if result.ready else "started (readiness not checked)")
    app.console.out(f"{state}: job {job.job} ({job.recipe_name}) on {', '.join(job.topology.hosts)}")
    served = ", ".join(result.served_models) or job.served_model_name
    app.console.out(f"endpoint: {job.endpoint()}  model: {served}")
    app.console.out(f"logs: sparkrun logs {job.job}    stop: sparkrun stop {job.job}")
