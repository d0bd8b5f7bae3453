"""`sparkrun status`, `logs JOB`, `stop JOB | --all`: jobs found by container label on the hosts."""

from __future__ import annotations

import click

from sparkrun.cli.context import AppContext, pass_app
from sparkrun.cli.options import hosts_options, json_option
from sparkrun.errors import PartialFailure


@click.command()
@hosts_options
@json_option
@pass_app
def status(app: AppContext, hosts: str | None, hosts_file: str | None, cluster: str | None, as_json: bool) -> None:
    """Show the sparkrun containers on the hosts, grouped by job.

    Exits 6 when some hosts could not be asked (they are listed with their error).
    """
    from sparkrun.orchestration import jobs_view

    selection = app.select_hosts(hosts, hosts_file, cluster)
    report = jobs_view.status_report(app.transport, selection)
    if as_json:
        app.console.json(report)
    else:
        jobs_view.print_status(app.console, report)
    bad = [h for h in report["hosts"] if not h["reachable"]]
    if bad:
        raise PartialFailure(f"{len(bad)} of {len(report['hosts'])} host(s) did not answer")


@click.command()
@click.argument("job")
@hosts_options
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option("-n", "--lines", "--tail", "lines", default="100", show_default=True, help="Lines to show ('all').")
@click.option("-a", "--all-sources", is_flag=True, help="Every rank's log, not just the head's.")
@pass_app
def logs(
    app: AppContext,
    job: str,
    hosts: str | None,
    hosts_file: str | None,
    cluster: str | None,
    follow: bool,
    lines: str,
    all_sources: bool,
) -> None:
    """Show (or follow) the engine log of JOB (job id, id prefix or recipe name)."""
    from sparkrun.orchestration import jobs_view

    selection = app.select_hosts(hosts, hosts_file, cluster)
    jobs_view.show_logs(app.transport, selection, job, follow=follow, lines=lines, all_sources=all_sources)


@click.command()
@click.argument("job", required=False)
@hosts_options
@click.option("-a", "--all", "stop_all", is_flag=True, help="Stop every sparkrun job on the hosts.")
@click.option("-n", "--dry-run", is_flag=True, help="Show what would be stopped; change nothing.")
@pass_app
def stop(
    app: AppContext,
    job: str | None,
    hosts: str | None,
    hosts_file: str | None,
    cluster: str | None,
    stop_all: bool,
    dry_run: bool,
) -> None:
    """Stop JOB (job id, id prefix or recipe name) on every host; idempotent.

    With hosts down it stops what it can, lists the rest and exits 6.
    """
    from sparkrun.errors import UsageError
    from sparkrun.orchestration import jobs_view

    if bool(job) == stop_all:
        raise UsageError("give a JOB or --all (not both)")
    selection = app.select_hosts(hosts, hosts_file, cluster)
    jobs_view.stop_jobs(app.console, app.transport, selection, job or "", dry_run=dry_run)
