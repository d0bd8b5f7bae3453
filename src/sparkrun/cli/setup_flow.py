"""The parts of `sparkrun setup …` behind the Click commands: options -> core API calls -> rendering. Nothing here
touches a host: `Session.setup()` does (sparkrun.setup)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from sparkrun.api import Limits, Prompts, SetupOptions, Target, new_cluster, run_wizard
from sparkrun.cli import setup_view as view
from sparkrun.cli.context import AppContext
from sparkrun.clusters import default_cluster_name, set_default_cluster
from sparkrun.core.apply import combine
from sparkrun.errors import HostError, InputError, UsageError

if TYPE_CHECKING:
    from sparkrun.setup import CheckLine


def options(kw: dict[str, Any], *, min_free: float = 10.0, max_skew: float = 5.0) -> SetupOptions:
    subnets = tuple(kw.get("subnets") or ()) or tuple(s for s in (kw.get("subnet1"), kw.get("subnet2")) if s)
    interfaces = tuple(i for i in (kw.get("interfaces") or "").split(",") if i)
    return SetupOptions(
        cache_dir=kw.get("cache_dir"),
        gpu_image=kw.get("gpu_image"),
        limits=Limits(min_free_gib=min_free, max_skew_s=max_skew, mtu=kw.get("mtu") or 9000),
        prefer=kw.get("prefer"),
        avoid=kw.get("avoid"),
        subnets=subnets,
        interfaces=interfaces,
        mtu=kw.get("mtu") or 9000,
        force=bool(kw.get("force")),
        accept_host_keys=tuple(kw.get("accept_host_keys") or ()),
        discover_ips=kw.get("discover_ips", True),
    )


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def prompts(*, steps: bool = False) -> Prompts:
    """Questions on a terminal (none otherwise): sudo passwords (hidden), host keys, and with `steps` each step."""
    if not interactive():
        return Prompts()
    last: list[str] = []

    def password(host: str, user: str) -> str:
        same = " (Enter: same as the last host)" if last else ""
        text = f"sudo password for {user}@{host}{same}"
        answer = str(click.prompt(text, hide_input=True, default="", show_default=False, err=True))
        if not answer and last:
            answer = last[0]
        last[:] = [answer]
        return answer

    def host_key(host: str, keys: Any) -> bool:
        click.echo(view.host_key_question(host, keys), err=True)
        return click.confirm("Record these keys for this host?", default=False, err=True)

    def confirm(question: str) -> bool:
        return click.confirm(question, default=True, err=True)

    return Prompts(password=password, host_key=host_key, confirm=confirm if steps else None)


def check(app: AppContext, where: Target, user: str | None, opts: SetupOptions, *, fix: bool, as_json: bool) -> None:
    setup = app.session.setup(where, user=user)
    if fix:
        result = setup.fix(opts, prompts())
        if as_json:
            app.console.json(result.to_json())
        else:
            view.check_table(app, result.before, title="before")
            view.applied(app, result.applied)
            view.check_table(app, result.after, title="after")
        report = result.after
    else:
        report = setup.check(opts)
        if as_json:
            app.console.json(report.to_json())
        else:
            view.check_table(app, report)
    if not report.ok:
        raise failed_checks(report.failed, fix=fix)


def failed_checks(lines: Sequence[CheckLine], *, fix: bool) -> HostError:
    """Exit 4 with the first failing check as the error line (its fix as the hint), the others listed under it."""
    first = lines[0]
    more = "" if fix else "; or `sparkrun setup check --fix` for the ones marked fixable"
    errors = [HostError(first.host, first.check, first.detail, hint=(first.fix or "see the table") + more)]
    errors += [HostError(line.host, line.check, line.detail) for line in lines[1:]]
    return combine(errors)


def act(
    app: AppContext, where: Target, user: str | None, action: str, opts: SetupOptions, *, dry_run: bool, as_json: bool
) -> None:
    setup = app.session.setup(where, user=user)
    sp = setup.plan(action, opts)
    if dry_run:
        app.console.json(sp.to_json()) if as_json else view.plan_text(app, sp)
        return
    result = setup.apply(sp, opts, prompts())
    if as_json:
        app.console.json(result.to_json())
    else:
        view.result_line(app, result)
    if result.blocked:
        raise combine(result.blocked)


def _wizard_target(app: AppContext, kw: dict[str, Any]) -> tuple[Target, str | None, bool]:
    """(hosts to act on, cluster name, whether the cluster is new)."""
    name, hosts, hosts_file = kw.pop("cluster"), kw.pop("hosts"), kw.pop("hosts_file")
    if hosts_file:
        from pathlib import Path  # deferred: only --hosts-file reads a file

        from sparkrun.hosts import read_hosts_file  # deferred: as above

        hosts = ",".join(read_hosts_file(Path(hosts_file).expanduser()))
    if hosts and not name:
        raise InputError("a new cluster needs a name", hint="pass --cluster NAME with -H (or --hosts-file)")
    if hosts:
        new_cluster(name, hosts, user=kw["user"], identity_file=kw.pop("identity_file"), dry_run=kw["dry_run"])
        return (Target(hosts=hosts) if kw["dry_run"] else Target(cluster=name)), name, True
    kw.pop("identity_file")
    return Target(cluster=name), name or default_cluster_name(app.user_config), False


def wizard(app: AppContext, kw: dict[str, Any]) -> None:
    yes, dry_run, as_json = kw.pop("yes"), kw["dry_run"], kw.pop("as_json")
    if not (yes or dry_run or interactive()):
        raise UsageError("the wizard asks before each step", hint="run it on a terminal, or pass --yes")
    where, name, created = _wizard_target(app, kw)
    user = kw["user"] if (not created or dry_run) else None
    setup = app.session.setup(where, user=user)
    result = run_wizard(setup, options(kw), prompts(steps=not yes), yes=yes, dry_run=dry_run, cluster=name)
    if created and not dry_run and name and default_cluster_name(app.user_config) is None:
        set_default_cluster(app.user_config, name)
        app.console.info(f"note: {name} is now the default cluster")
    if as_json:
        app.console.json(result.to_json())
    else:
        view.wizard_summary(app, result, dry_run=dry_run)
    if result.report is not None and not result.report.ok:
        raise failed_checks(result.report.failed, fix=True)
