"""`sparkrun status`, `logs JOB`, `stop JOB | --all`: jobs found by container label on the hosts.

Without -H/--hosts-file/--cluster they act on the hosts this machine knows: a job's own record (for `logs JOB` and
`stop JOB`), every recorded job's hosts and the default cluster's (for `status` and `stop --all`).
"""

from __future__ import annotations

from typing import Any

import click

from sparkrun.cli.context import AppContext, pass_app, target
from sparkrun.cli.options import hosts_options, json_option
from sparkrun.errors import PartialFailure, UsageError


@click.command()
@hosts_options
@json_option
@pass_app
def status(app: AppContext, hosts: str | None, hosts_file: str | None, cluster: str | None, as_json: bool) -> None:
    """Show the sparkrun containers on the hosts, grouped by job.

    Exits 6 when some hosts could not be asked (they are listed with their error).
    """
    report = app.session.status(target(hosts, hosts_file, cluster))
    if as_json:
        app.console.json(report.to_json())
    else:
        print_status(app, report.to_json())
    bad = report.unreachable
    if bad:
        raise PartialFailure(f"{len(bad)} of {len(report.to_json()['hosts'])} host(s) did not answer")


def print_status(app: AppContext, report: dict[str, Any]) -> None:
    rows = []
    for job in report["jobs"]:
        for c in job["containers"]:
            state = c["state"] if c["state"] == "running" else f"{c['state']} ({c['exit_code']})"
            rows.append((job["job"], job["recipe"], c["role"], c["host"], state, job["endpoint"] or ""))
    if rows:
        app.console.table(["JOB", "RECIPE", "ROLE", "HOST", "STATE", "ENDPOINT"], rows)
    else:
        app.console.out(f"no sparkrun jobs on {len(report['hosts'])} host(s) ({report['source']})")
    for op in report["pending"]:
        what = "stale (its process is gone)" if op["stale"] else f"in progress for {op['seconds']:.0f}s"
        app.console.out(f"{op['operation']} {op['job']} ({op.get('recipe', '?')}): {what}")
    for host in report["hosts"]:
        if not host["reachable"]:
            app.console.out(f"{host['host']}: unreachable: {host['error']}")


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
    app.session.logs(
        target(hosts, hosts_file, cluster),
        job,
        follow=follow,
        lines=lines,
        all_sources=all_sources,
        on_line=app.console.out,
    )


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
    if bool(job) == stop_all:
        raise UsageError("give a JOB or --all (not both)")
    where = target(hosts, hosts_file, cluster)
    if dry_run:
        ref, on = app.session.stop_plan(where, job or "")
        app.console.out(f"would stop {f'job {ref}' if ref else 'every sparkrun job'} on {', '.join(map(str, on))}")
        return
    result = app.session.stop(where, job or "")
    what = f"job {result.job}" if result.job else "every sparkrun job"
    app.console.info(f"stopped {what}: removed {result.removed} container(s) on {len(result.hosts)} host(s)")
