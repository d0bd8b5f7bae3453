"""How setup results look: the check table (one line per host and check, failing lines with their fix), plans for
`--dry-run`, one-line outcomes, the wizard's summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sparkrun.cli.context import AppContext

if TYPE_CHECKING:
    from sparkrun.setup import CheckReport, SetupPlan, SetupResult, WizardResult


def check_table(app: AppContext, report: CheckReport, *, title: str | None = None) -> None:
    rows = [(line.host, line.check, line.status, line.detail, line.fix or "") for line in report.lines]
    app.console.table(["HOST", "CHECK", "STATUS", "DETAIL", "FIX"], rows, title=title)
    counts = ", ".join(f"{n} {status}" for status, n in report.summary().items() if n)
    verdict = "every check passed" if report.ok else "some checks failed"
    app.console.out(
        f"{len(report.facts)} host(s), {len(report.lines)} checks: {counts} in {report.seconds:.1f}s: {verdict}"
    )


def plan_text(app: AppContext, sp: SetupPlan) -> None:
    hosts = {s.host.address for s in sp.plan.steps if not s.host.local}
    here = " and this machine" if any(s.host.local for s in sp.plan.steps) else ""
    app.console.out(f"setup {sp.action}: plan for {len(hosts)} host(s){here} (nothing has changed)")
    for step in sp.plan.steps:
        where = f"  {step.host.address:<15} {step.phase:<16}"
        if step.noop:
            app.console.out(f"{where} nothing to do: {step.noop}")
            continue
        app.console.out(f"{where} {step.summary}")
        for line in step.detail:
            app.console.out(f"  {'':<15} {'':<16}   $ {line}")
    for scan in sp.scans:
        shown = ", ".join(f"{kind} {fp}" for kind, fp in scan.fingerprints())
        app.console.out(f"  host key of {scan.host} (scanned, needs your confirmation): {shown}")
    for note in sp.notes:
        app.console.out(f"  note: {note}")
    for error in sp.blocked:
        app.console.out(f"  cannot: {error}" + (f" ({error.hint})" if error.hint else ""))


def result_line(app: AppContext, result: SetupResult) -> None:
    changed = result.changed_hosts
    ran = {e.step.host.address for e in result.finished if not e.step.host.local}
    same = sorted(ran - set(changed))
    parts = [f"changed {len(changed)} host(s)" + (f" ({', '.join(changed)})" if changed else "")]
    if same:
        parts.append(f"nothing to do on {len(same)}")
    app.console.out(f"setup {result.action}: " + ", ".join(parts))


def applied(app: AppContext, results: Sequence[SetupResult]) -> None:
    if not results:
        app.console.out("nothing --fix could change")
    for result in results:
        result_line(app, result)
        for error in result.blocked:
            app.console.warn(f"{result.action}: {error}" + (f" ({error.hint})" if error.hint else ""))


def host_key_question(host: str, keys: Sequence[tuple[str, str]]) -> str:
    lines = [f"{host}: this machine does not know its SSH host key. The host presents, over the network:"]
    lines += [f"  {kind:<20} {fp}" for kind, fp in keys]
    lines.append("Compare on the host's console: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub")
    return "\n".join(lines)


def wizard_summary(app: AppContext, result: WizardResult, *, dry_run: bool) -> None:
    rows = []
    for step in result.steps:
        if dry_run and step.plan is not None:
            plan_text(app, step.plan)
        if step.result is not None:
            changed = step.result.changed_hosts
            outcome = f"changed {', '.join(changed)}" if changed else "nothing changed"
        else:
            outcome = step.skipped or ""
        rows.append((step.action, outcome))
    app.console.table(["STEP", "OUTCOME"], rows, title=f"setup wizard: {result.cluster or 'default cluster'}")
    for error in result.errors:
        app.console.warn(str(error) + (f" ({error.hint})" if error.hint else ""))
    if result.report is not None:
        check_table(app, result.report, title="setup check")
