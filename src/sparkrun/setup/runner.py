"""`HostSetup`: the setup commands for one set of hosts. Facts first (setup_check.sh, one round trip per host, read
only), then pure planners turn facts into a `Plan` (no-ops where nothing is needed), then the core's `apply` runs it.

    setup = session.setup(Target(cluster="lab"))
    report = setup.check(SetupOptions())                    # CheckReport: .ok, .lines, .to_json()
    sp = setup.plan("docker-group", SetupOptions())         # SetupPlan: the dry-run
    result = setup.apply(sp, SetupOptions(), Prompts(...))  # SetupResult
    fixed = setup.fix(SetupOptions(), Prompts(...))         # FixResult: check, safe fixes, check again
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import cached_property

from sparkrun.clusters import HostSelection
from sparkrun.core.apply import apply
from sparkrun.core.events import Emit, PhaseStarted, StepFinished, ignore
from sparkrun.core.plan import Plan, Step
from sparkrun.errors import HostError, InputError
from sparkrun.hosts import Host
from sparkrun.setup.actions import plan_clear_cache, plan_docker_group, plan_earlyoom, plan_fix_permissions
from sparkrun.setup.checks import evaluate
from sparkrun.setup.control import CONTROL, Scan, accepted_keys, parse_scan, record_plan, refused, scan_values
from sparkrun.setup.cx7 import plan_cx7
from sparkrun.setup.facts import HostFacts, parse_check
from sparkrun.setup.mesh import PLACEHOLDER, learned_keys, plan_keygen, plan_trust
from sparkrun.setup.options import CX7_NETPLAN_FILE, DEFAULT_HF_CACHE, Origin, Prompts, SetupOptions
from sparkrun.setup.report import CheckReport, FixResult, SetupPlan, SetupResult, merge_facts
from sparkrun.setup.sudo import collect_passwords, needs_password, with_passwords
from sparkrun.shell import render_script
from sparkrun.transport.base import Transport
from sparkrun.transport.ssh import HOST_KEY_UNKNOWN, SSH_HINTS

ACTIONS = ("ssh", "docker-group", "fix-permissions", "earlyoom", "clear-cache", "cx7")
CHECK_TIMEOUT_S = 150.0
GPU_TIMEOUT_S = 60
PEER_OPTIONS = (
    *("-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "StrictHostKeyChecking=yes"),
    *("-o", "UpdateHostKeys=no", "-o", "ControlMaster=no", "-o", "ControlPath=none"),
)


def peer_ssh(host: Host) -> list[str]:
    """How a host tries its peers in the check: the hosts' own SSH config, as the cluster's user and port, and never
    a prompt or a write to known_hosts."""
    argv = ["ssh", *PEER_OPTIONS]
    if host.ssh.port:
        argv += ["-p", str(host.ssh.port)]
    if host.ssh.user:
        argv += ["-l", host.ssh.user]
    return argv


class HostSetup:
    def __init__(
        self,
        select: Callable[[], HostSelection],
        transport: Transport,
        *,
        emit: Emit = ignore,
        origin: Origin | None = None,
    ) -> None:
        self._select = select
        self.transport = transport
        self.emit = emit
        self.origin = origin or Origin()
        self._passwords: dict[str, str] = {}  # host -> sudo password, for this command only

    @cached_property
    def selection(self) -> HostSelection:
        selection = self._select()
        if not self.origin.user:
            return selection
        hosts = tuple(replace(h, ssh=replace(h.ssh, user=self.origin.user)) for h in selection.hosts)
        return replace(selection, hosts=hosts)

    @property
    def hosts(self) -> tuple[Host, ...]:
        return self.selection.hosts

    def cache_dir(self, options: SetupOptions) -> str:
        return options.cache_dir or self.selection.cluster.hf_cache or DEFAULT_HF_CACHE

    # ---- facts -----------------------------------------------------------------------------------------------------
    def check_step(self, host: Host, options: SetupOptions) -> Step:
        values = {
            "SELF": host.address,
            "SSH_PORT": str(host.ssh.port or 22),
            "PEERS": [h.address for h in self.hosts if h.address != host.address],
            "PEER_SSH": peer_ssh(host),
            "HF_CACHE": self.cache_dir(options),
            "GPU_IMAGE": options.gpu_image or "",
            "GPU_TIMEOUT": str(GPU_TIMEOUT_S),
            "SYSFS_ROOT": "/sys",
            "CX7_FILE": CX7_NETPLAN_FILE,
        }
        return Step(host, "setup_check", values, f"check {host.address}", "check", timeout=CHECK_TIMEOUT_S)

    def gather(self, options: SetupOptions, only: Sequence[Host] | None = None) -> dict[str, HostFacts]:
        """Run setup_check.sh on every host at once; the control machine's clock brackets each run."""
        steps = [self.check_step(h, options) for h in (only or self.hosts)]
        self.emit(PhaseStarted("check", tuple(steps)))

        def one(step: Step) -> HostFacts:
            sent = time.time()
            result = self.transport.run(step.host, step.render(), timeout=step.timeout)
            window = (sent, time.time())
            self.emit(StepFinished(step, result))
            return parse_check(step.host, result, window)

        limit = max(1, min(getattr(self.transport, "max_parallel", 16), len(steps)))
        with ThreadPoolExecutor(max_workers=limit) as pool:
            try:
                found = list(pool.map(one, steps))
            except BaseException:
                self.transport.terminate_all()
                raise
        return {f.address: f for f in found}

    def check(self, options: SetupOptions) -> CheckReport:
        started = time.monotonic()
        facts = self.gather(options)
        return CheckReport(facts, evaluate(facts, self.origin, options.limits), time.monotonic() - started)

    # ---- plans -----------------------------------------------------------------------------------------------------
    def plan(
        self,
        action: str,
        options: SetupOptions,
        facts: Mapping[str, HostFacts] | None = None,
        *,
        host_keys: bool = True,
    ) -> SetupPlan:
        """What `action` would do, decided from the hosts' facts (read now unless given). `host_keys=False`: ssh
        leaves hosts whose key the control machine does not know alone (they need the user's confirmation)."""
        if action not in ACTIONS:
            raise InputError(f"unknown setup action {action!r}", hint=f"one of: {', '.join(ACTIONS)}")
        facts = dict(facts) if facts is not None else self.gather(options)
        if action == "ssh":
            return self._plan_ssh(facts, options, host_keys=host_keys)
        planners = {
            "docker-group": lambda: plan_docker_group(facts, options),
            "fix-permissions": lambda: plan_fix_permissions(facts, self.cache_dir(options)),
            "earlyoom": lambda: plan_earlyoom(facts, options),
            "clear-cache": lambda: plan_clear_cache(facts, options),
            "cx7": lambda: plan_cx7(facts, options),
        }
        plan, blocked = planners[action]()
        return SetupPlan(action, plan, facts, tuple(_unreached(facts) + blocked))

    def _scan(self, hosts: Sequence[Host]) -> tuple[list[Scan], list[HostError]]:
        scans: list[Scan] = []
        errors: list[HostError] = []
        for host in hosts:
            found = parse_scan(host, self.transport.run(CONTROL, render_script("setup_control", scan_values(host))))
            (errors if isinstance(found, HostError) else scans).append(found)  # type: ignore[arg-type]
        return scans, errors

    def _plan_ssh(self, facts: dict[str, HostFacts], options: SetupOptions, *, host_keys: bool) -> SetupPlan:
        unknown = [f.host for f in facts.values() if f.error == HOST_KEY_UNKNOWN]
        scans, errors = self._scan(unknown) if host_keys else ([], [])
        skipped = [f for f in _unreached(facts) if host_keys is False or f.cause != HOST_KEY_UNKNOWN]
        record = record_plan(scans, {s.host: s.keys for s in scans})
        keygen, blocked_keygen = plan_keygen(facts)
        placeholders = {s.host.address: PLACEHOLDER.format(host=s.host.address) for s in keygen.steps if not s.noop}
        trust, blocked_trust = plan_trust(facts, placeholders, discover_ips=options.discover_ips)
        notes = (f"after their keys are confirmed, {', '.join(s.host for s in scans)} join the mesh",) if scans else ()
        blocked = tuple(skipped + errors + blocked_keygen + blocked_trust)
        return SetupPlan("ssh", record.then(keygen).then(trust), facts, blocked, notes, tuple(scans))

    # ---- apply -----------------------------------------------------------------------------------------------------
    def _run(self, plan: Plan, facts: Mapping[str, HostFacts], prompts: Prompts) -> list[StepFinished]:
        users = {host: f.user for host, f in facts.items()}
        collect_passwords(needs_password(plan), self._passwords, prompts.password, users)
        return apply(with_passwords(plan, self._passwords), self.transport, emit=self.emit)

    def apply(self, sp: SetupPlan, options: SetupOptions, prompts: Prompts) -> SetupResult:
        """Run a plan from `plan()`. Hosts in `sp.blocked` are left out (the result lists them)."""
        if sp.action == "ssh":
            return self._apply_ssh(sp, options, prompts)
        result = SetupResult(sp.action, blocked=list(sp.blocked))
        result.finished = self._run(sp.plan, sp.facts, prompts)
        return result

    def _apply_ssh(self, sp: SetupPlan, options: SetupOptions, prompts: Prompts) -> SetupResult:
        result = SetupResult("ssh", blocked=[e for e in sp.blocked if not any(s.host == e.host for s in sp.scans)])
        facts = dict(sp.facts)
        chosen: dict[str, tuple[tuple[str, str], ...]] = {}
        for scan in sp.scans:
            keys = accepted_keys(scan, options.accept_host_keys, prompts.host_key)
            if keys:
                chosen[scan.host] = keys
            else:
                result.blocked.append(refused(scan))
        if chosen:
            result.finished += self._run(record_plan(sp.scans, chosen), facts, prompts)
            again = self.gather(options, [f.host for f in facts.values() if f.address in chosen])
            facts = merge_facts(facts, again)
            result.facts = facts
            result.blocked += _unreached(again)
        keygen, blocked = plan_keygen(facts)
        result.blocked += blocked
        made = self._run(keygen, facts, prompts)
        result.finished += made
        new_keys = learned_keys([(e.step.host.address, e.result.output.last("userkey")) for e in made if e.result])
        trust, blocked = plan_trust(facts, new_keys, discover_ips=options.discover_ips)
        result.blocked += blocked
        result.finished += self._run(trust, facts, prompts)
        return result

    def fix(self, options: SetupOptions, prompts: Prompts) -> FixResult:
        """Check, apply the safe fixes for what failed (never a host key from the network), check again."""
        before = self.check(options)
        applied: list[SetupResult] = []
        for action in before.fix_actions():
            sp = self.plan(action, options, before.facts, host_keys=False)
            if not sp.changes:
                continue
            try:
                applied.append(self.apply(sp, options, prompts))
            except HostError as exc:
                applied.append(SetupResult(action, blocked=[exc]))
        return FixResult(before, applied, self.check(options))


def _unreached(facts: Mapping[str, HostFacts]) -> list[HostError]:
    return [
        HostError(f.address, "ssh", f.error or "not reached", hint=SSH_HINTS.get(f.error or ""))
        for f in facts.values()
        if not f.reached
    ]
