"""Results of setup commands, as data with `to_json()` (the `--json` documents README "setup" describes)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sparkrun.core.events import StepFinished
from sparkrun.core.plan import Plan
from sparkrun.errors import HostError
from sparkrun.setup.checks import CheckLine
from sparkrun.setup.control import Scan
from sparkrun.setup.facts import HostFacts

FIX_ORDER = ("ssh", "docker-group", "fix-permissions", "earlyoom", "cx7")


def _host_json(f: HostFacts) -> dict[str, Any]:
    data: dict[str, Any] = {"host": f.address, "reachable": f.reached, "error": f.error}
    if f.reached:
        data.update(
            user=f.user,
            hostname=f.hostname,
            sudo=f.sudo,
            docker=f.docker_detail if f.docker == "ok" else None,
            clock_skew_s=None if f.skew is None else round(f.skew, 3),
            addresses=list(f.addresses),
        )
    return data


@dataclass
class CheckReport:
    facts: dict[str, HostFacts]
    lines: list[CheckLine]
    seconds: float = 0.0

    @property
    def failed(self) -> list[CheckLine]:
        return [line for line in self.lines if line.status == "fail"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> dict[str, int]:
        counts = Counter(line.status for line in self.lines)
        return {s: counts.get(s, 0) for s in ("ok", "warn", "fail", "skip")}

    def fix_actions(self) -> list[str]:
        """The setup actions `--fix` would run, in the order they must run."""
        wanted = {line.action for line in self.failed + self.warned if line.action}
        return [a for a in FIX_ORDER if a in wanted]

    @property
    def warned(self) -> list[CheckLine]:
        return [line for line in self.lines if line.status == "warn"]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "summary": self.summary(),
            "seconds": round(self.seconds, 3),
            "hosts": [_host_json(f) for f in self.facts.values()],
            "checks": [line.to_json() for line in self.lines],
        }


@dataclass(frozen=True)
class SetupPlan:
    """What a setup command would do: the steps per host (no-ops with their reasons) and the hosts it cannot help."""

    action: str
    plan: Plan
    facts: Mapping[str, HostFacts]
    blocked: tuple[HostError, ...] = ()
    notes: tuple[str, ...] = ()
    scans: tuple[Scan, ...] = ()  # ssh: hosts whose key the control machine does not know yet, as scanned

    @property
    def changes(self) -> bool:
        return any(not s.noop for s in self.plan.steps)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "steps": self.plan.to_json()["steps"],
            "blocked": [{"host": e.host, "step": e.step, "cause": e.cause, "hint": e.hint} for e in self.blocked],
            "notes": list(self.notes),
            "host_keys": [
                {"host": s.host, "file": s.known_hosts_file, "name": s.name, "fingerprints": s.fingerprints()}
                for s in self.scans
            ],
        }


def _step_json(e: StepFinished) -> dict[str, Any]:
    data: dict[str, Any] = {"host": e.step.host.address, "action": e.step.phase, "summary": e.step.summary}
    if e.result is None:
        data.update(changed=False, ok=True, noop=e.step.noop)
    else:
        changes = e.result.output.all("changed")
        data.update(changed=bool(changes), ok=e.result.ok, changes=changes, unchanged=e.result.output.all("unchanged"))
    return data


@dataclass
class SetupResult:
    """What a setup command did: one entry per step that ran or was a no-op."""

    action: str
    finished: list[StepFinished] = field(default_factory=list)
    blocked: list[HostError] = field(default_factory=list)
    facts: dict[str, HostFacts] | None = None  # facts read again during the command (ssh: newly reachable hosts)

    @property
    def changed_hosts(self) -> list[str]:
        """The cluster's hosts where something changed (not this machine's own steps), first change first."""
        hosts = [
            e.step.host.address
            for e in self.finished
            if e.result is not None and e.result.output.all("changed") and not e.step.host.local
        ]
        return sorted(set(hosts), key=hosts.index)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "steps": [_step_json(e) for e in self.finished],
            "changed_hosts": self.changed_hosts,
            "blocked": [{"host": e.host, "step": e.step, "cause": e.cause, "hint": e.hint} for e in self.blocked],
        }


@dataclass
class FixResult:
    """`setup check --fix`: the report before, what was applied, the report after."""

    before: CheckReport
    applied: list[SetupResult]
    after: CheckReport

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.after.ok,
            "before": self.before.to_json(),
            "applied": [r.to_json() for r in self.applied],
            "after": self.after.to_json(),
        }


def merge_facts(old: Mapping[str, HostFacts], new: Mapping[str, HostFacts]) -> dict[str, HostFacts]:
    return {host: new.get(host, f) for host, f in old.items()}


def describe(plans: Sequence[SetupPlan]) -> list[str]:
    """Plain lines for a confirmation prompt: what would change where."""
    lines = []
    for sp in plans:
        for step in sp.plan.steps:
            if not step.noop:
                lines.append(f"  {step.host.address}: {step.summary}")
    return lines
