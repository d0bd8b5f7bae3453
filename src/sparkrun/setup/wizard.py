"""`setup wizard`: a new or named cluster from unprepared hosts to a passing `setup check`, step by step.

The cluster (created when it is new), then the SSH mesh, the docker group, the cache's owner, earlyoom and the CX7
addresses, each planned from the hosts' facts and shown before it runs (a step with nothing to do is skipped), then
`setup check` and a summary. `yes` answers the questions; it never accepts a host key scanned over the network and
never invents a CX7 subnet (give `--cx7-subnet`, or the step is skipped with a warning).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sparkrun.clusters import Cluster, apply_changes, cluster_path, save_cluster
from sparkrun.core.events import Note, Warning
from sparkrun.errors import HostError, InputError
from sparkrun.hosts import parse_host_list
from sparkrun.setup.cx7 import interfaces_of, suggest_subnets
from sparkrun.setup.facts import HostFacts
from sparkrun.setup.options import Prompts, SetupOptions
from sparkrun.setup.report import CheckReport, SetupPlan, SetupResult, describe, merge_facts
from sparkrun.setup.runner import HostSetup

WIZARD_STEPS = ("ssh", "docker-group", "fix-permissions", "earlyoom", "cx7")


def new_cluster(name: str, hosts: str, *, user: str | None, identity_file: str | None, dry_run: bool) -> Cluster:
    """The cluster the wizard starts from: created (saved) when `name` is new; an error when it exists."""
    if cluster_path(name).exists():
        raise InputError(
            f"cluster {name!r} already exists",
            hint=f"run the wizard on it with `sparkrun setup wizard --cluster {name}` (without -H), "
            f"or change its hosts with `sparkrun cluster update {name}`",
        )
    cluster = apply_changes(
        Cluster(name=name, hosts=parse_host_list(hosts, where="--hosts")), user=user, identity_file=identity_file
    )
    if not dry_run:
        save_cluster(cluster)
    return cluster


@dataclass
class WizardStep:
    action: str
    plan: SetupPlan | None = None
    result: SetupResult | None = None
    skipped: str | None = None  # why this step did not run

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "skipped": self.skipped,
            "plan": self.plan.to_json() if self.plan else None,
            "result": self.result.to_json() if self.result else None,
        }


@dataclass
class WizardResult:
    cluster: str | None
    steps: list[WizardStep] = field(default_factory=list)
    report: CheckReport | None = None
    errors: list[HostError] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "ok": bool(self.report and self.report.ok),
            "steps": [s.to_json() for s in self.steps],
            "errors": [str(e) for e in self.errors],
            "check": self.report.to_json() if self.report else None,
        }


def _cx7_skip(facts: Mapping[str, HostFacts], options: SetupOptions) -> str | None:
    """Why the wizard leaves CX7 alone: nothing to configure, or addresses needed and no subnet to take them from."""
    if not any(interfaces_of(f) for f in facts.values() if f.reached):
        return "no host has a CX7 (RDMA) interface with a link"
    if not options.subnets and not suggest_subnets(facts):
        missing = [f.address for f in facts.values() if f.reached and any(not p.addresses for p in f.ib if p.usable)]
        if missing:
            return f"no CX7 subnet given (--cx7-subnet CIDR) and {', '.join(missing)} have no CX7 address"
    return None


def run_wizard(
    setup: HostSetup, options: SetupOptions, prompts: Prompts, *, yes: bool, dry_run: bool, cluster: str | None
) -> WizardResult:
    out = WizardResult(cluster)
    facts = setup.gather(options)
    for action in WIZARD_STEPS:
        step = WizardStep(action)
        out.steps.append(step)
        if action == "cx7" and (why := _cx7_skip(facts, options)):
            step.skipped = why
            setup.emit(Warning(f"cx7: skipped: {why}"))
            continue
        step.plan = setup.plan(action, options, facts)
        if not step.plan.changes and not step.plan.scans:
            step.skipped = "nothing to do"
            setup.emit(Note(f"{action}: nothing to do"))
            continue
        if dry_run:
            step.skipped = "dry run"
            continue
        question = "\n".join([f"{action}:", *describe([step.plan]), "apply?"])
        if not yes and (prompts.confirm is None or not prompts.confirm(question)):
            step.skipped = "declined"
            continue
        try:
            step.result = setup.apply(step.plan, options, prompts)
        except HostError as exc:
            out.errors.append(exc)
            step.skipped = f"failed: {exc}"
            continue
        out.errors += step.result.blocked
        if step.result.facts:
            facts = merge_facts(facts, step.result.facts)
    if not dry_run:
        out.report = setup.check(options)
    return out
