"""`sparkrun run RECIPE [-- EXTRA_ARGS]`: plan, then launch, wait until ready and follow the logs."""

from __future__ import annotations

import sys

import click

from sparkrun.cli.context import AppContext, pass_app
from sparkrun.cli.options import SERVE_VALUE_KEYS, hosts_options, serve_value_options


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("recipe")
@click.argument("extra_args", nargs=-1, type=click.UNPROCESSED)
@hosts_options
@serve_value_options
@click.option("-e", "--env", "env", multiple=True, metavar="KEY=VALUE", help="Container environment (repeatable).")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Extra container label (repeatable).")
@click.option("-n", "--dry-run", is_flag=True, help="Print the plan and stop; opens no connection.")
@click.option("--json", "as_json", is_flag=True, help="JSON output (the plan with --dry-run, else the outcome).")
@click.option("--follow/--no-follow", default=None, help="Follow the logs once ready (default: on a terminal).")
@click.option("--foreground", is_flag=True, help="Follow the logs; Ctrl-C stops the job.")
@click.option("--no-ready-wait", is_flag=True, help="Return once the containers run; skip readiness.")
@click.option("--ensure", is_flag=True, help="Reuse an identical running job instead of relaunching.")
@click.option("--no-rm", is_flag=True, help="Keep containers after a failure (for debugging).")
@click.option("--trust", is_flag=True, help="Allow hooks and isolation-breaking settings of an untrusted recipe.")
@click.option("--offline", is_flag=True, help="Never pull images; fail if one is missing.")
@pass_app
def run(
    app: AppContext,
    /,
    recipe: str,
    extra_args: tuple[str, ...],
    hosts: str | None,
    hosts_file: str | None,
    cluster: str | None,
    image: str | None,
    options: tuple[str, ...],
    env: tuple[str, ...],
    labels: tuple[str, ...],
    dry_run: bool,
    as_json: bool,
    follow: bool | None,
    foreground: bool,
    no_ready_wait: bool,
    ensure: bool,
    no_rm: bool,
    trust: bool,
    offline: bool,
    **values: object,
) -> None:
    """Launch RECIPE on the hosts, wait until it serves, then follow its logs.

    Arguments after `--` are appended to the engine's serve command.
    """
    from sparkrun.launching import LaunchFlags, RunOptions, execute

    cli_values = {key: values[key] for key in SERVE_VALUE_KEYS}
    opts = RunOptions(recipe, cli_values, options, image, env, labels, extra_args, trust, offline)
    flags = LaunchFlags(
        dry_run=dry_run,
        as_json=as_json,
        follow=foreground or (follow if follow is not None else sys.stdout.isatty()),
        foreground=foreground,
        wait_ready=not no_ready_wait,
        ensure=ensure,
        keep_on_failure=no_rm,
    )
    execute(app, app.select_hosts(hosts, hosts_file, cluster), opts, flags)
