"""The core API: plan, run, status, logs and stop, taking plain values and returning results and events.

It imports no Click and prints nothing: progress reaches the caller as events (`sparkrun.core.events`) through the
`emit` callback, results come back as objects with `to_json()`. The CLI renders them; the Claude Code plugin, tests
and other programs call the same functions:

    from sparkrun.api import RecipeInput, Session, Target
    session = Session(emit=print)
    plan = session.plan_run(RecipeInput("qwen3-1.7b-vllm"), Target(hosts="spark1,spark2"))   # no connection
    result = session.run(RecipeInput("qwen3-1.7b-vllm", values={"tensor_parallel": 2}), Target(cluster="lab"))
    session.status(Target()).to_json()
    session.stop(Target(), result.job.job)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sparkrun.clusters import Cluster, HostSelection, resolve_hosts
from sparkrun.config import UserConfig, load_user_config
from sparkrun.core.apply import apply, combine
from sparkrun.core.events import Emit, Note, StepFinished, StepProgress, Warning, ignore
from sparkrun.core.plan import Plan
from sparkrun.errors import InputError, PartialFailure
from sparkrun.hosts import Host
from sparkrun.jobs.control import (
    StatusReport,
    StopResult,
    find_job,
    hosts_of,
    logs_streams,
    pump_streams,
    status_report,
    stop_on_hosts,
)
from sparkrun.jobs.identity import JOB_ID_RE
from sparkrun.jobs.lookup import selection_for_job, selection_for_records, ssh_to_record
from sparkrun.jobs.records import JobStore
from sparkrun.launch.facts import HostFacts, parse_facts
from sparkrun.launch.planner import JobPlan, plan_job
from sparkrun.launch.request import RecipeInput, launch_request, resolve_input
from sparkrun.launch.steps import check_facts, launch_error, launch_plan, probe_plan, reusable
from sparkrun.recipes.resolved import preview_hosts
from sparkrun.setup import HostSetup, Limits, Origin, Prompts, SetupOptions, new_cluster, run_wizard
from sparkrun.shell import ParamValue, render_script
from sparkrun.transport.base import Transport

__all__ = [
    "HostSetup",
    "Limits",
    "Prompts",
    "RecipeInput",
    "RunPlan",
    "RunResult",
    "Session",
    "SetupOptions",
    "Target",
    "new_cluster",
    "run_wizard",
]


@dataclass(frozen=True)
class Target:
    """Which hosts, as a user names them: `-H a,b`, `--hosts-file F`, `--cluster C`, or nothing (the default
    cluster, then `hosts:` in config.yaml, then, for job commands, the local records of launched jobs)."""

    hosts: str | None = None
    hosts_file: str | None = None
    cluster: str | None = None

    @property
    def given(self) -> bool:
        return bool(self.hosts or self.hosts_file or self.cluster)


@dataclass(frozen=True)
class RunPlan:
    """What `run` would do: the job (containers per rank) and the steps, before any connection."""

    job: JobPlan
    plan: Plan
    warnings: tuple[str, ...] = ()


@dataclass
class RunResult:
    job: JobPlan
    reused: bool = False
    ready: bool = False
    served_models: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def served_model(self) -> str:
        return self.served_models[0] if self.served_models else self.job.served_model_name

    def to_json(self) -> dict[str, Any]:
        job = self.job
        return {
            "job": job.job,
            "recipe": job.recipe_name,
            "runtime": job.runtime,
            "hosts": list(job.topology.hosts),
            "endpoint": job.endpoint(),
            "served_model_name": self.served_model,
            "served_models": list(self.served_models),
            "ready": self.ready,
            "reused": self.reused,
            "timings": self.timings,
            "notes": self.notes,
        }


def _placeholders(count: int) -> HostSelection:
    names = preview_hosts(count)
    return HostSelection(tuple(Host(n) for n in names), "no hosts given: placeholders", Cluster("", names))


class Session:
    """One caller's view of sparkrun: config, runtime plugins, a transport and an event sink. Cheap to create."""

    def __init__(
        self,
        *,
        emit: Emit = ignore,
        transport: Transport | None = None,
        config: UserConfig | None = None,
        store: JobStore | None = None,
        trace: Callable[[str], None] | None = None,
    ) -> None:
        self.emit = emit
        self._transport = transport
        self._config = config
        self.store = store or JobStore()
        self.trace = trace

    @cached_property
    def config(self) -> UserConfig:
        return self._config or load_user_config()

    @cached_property
    def runtimes(self) -> Any:
        from sparkrun.plugins import load_runtimes  # deferred: SAF and the plugins load only when a recipe runs

        return load_runtimes()

    @cached_property
    def transport(self) -> Transport:
        if self._transport is not None:
            return self._transport
        from sparkrun.transport.ssh import SshTransport  # deferred: subprocess/threads only for commands that connect

        return SshTransport(max_parallel=int(self.config.get("ssh.max_parallel", 16)), trace=self.trace)

    # ---- hosts -------------------------------------------------------------------------------------------------
    def select(self, target: Target) -> HostSelection:
        return resolve_hosts(self.config, hosts=target.hosts, hosts_file=target.hosts_file, cluster=target.cluster)

    def _default_selection(self) -> HostSelection | None:
        try:
            return self.select(Target())
        except InputError:
            return None

    def select_for_job(self, target: Target, ref: str) -> HostSelection:
        """Explicit hosts win; else the job's local record; else the default cluster."""
        if target.given:
            return self.select(target)
        if not ref:  # every job: wherever this machine launched some, and the default cluster
            return selection_for_records(self.store, self._default_selection()) or self.select(target)
        return selection_for_job(self.store, ref) or self.select(target)

    # ---- run ---------------------------------------------------------------------------------------------------
    def _resolve(
        self, given: RecipeInput, target: Target, *, dry_run: bool, confirm: Callable[[str], bool] | None
    ) -> tuple[JobPlan, Any]:
        resolved = resolve_input(
            self.runtimes,
            given,
            notify=lambda m: self.emit(Note(m)),
            warn=lambda m: self.emit(Warning(m)),
            dry_run=dry_run,
            confirm=confirm,
        )
        if dry_run and not target.given and self._default_selection() is None:
            selection = _placeholders(resolved.nodes)
        else:
            selection = self.select(target)
        lr = launch_request(resolved, selection, given)
        return plan_job(lr), lr

    def plan_run(self, given: RecipeInput, target: Target) -> RunPlan:
        """The dry-run: everything `run` would do, without a connection, deterministic."""
        warnings: list[str] = []
        outer = self.emit

        def keep(event: Any) -> None:
            if isinstance(event, Warning):
                warnings.append(event.message)
            outer(event)

        self.emit = keep
        try:
            job, _lr = self._resolve(given, target, dry_run=True, confirm=None)
        finally:
            self.emit = outer
        plan = probe_plan(job).then(launch_plan(job, None, wait_ready=True))
        return RunPlan(job, plan, tuple(warnings))

    def probe(self, job: JobPlan) -> dict[str, HostFacts]:
        finished = apply(probe_plan(job), self.transport, emit=self.emit)
        return {e.result.host: parse_facts(e.result.host, e.result.output) for e in finished if e.result}

    def run(
        self,
        given: RecipeInput,
        target: Target,
        *,
        ensure: bool = False,
        wait_ready: bool = True,
        keep_on_failure: bool = False,
        confirm: Callable[[str], bool] | None = None,
    ) -> RunResult:
        """Probe, start the ranks group by group, wait until ready, record the job. On failure or interrupt the
        job's containers are removed on every host before the error is raised (unless `keep_on_failure`)."""
        first, lr = self._resolve(given, target, dry_run=False, confirm=confirm)
        hosts = list(first.topology.hosts)
        with self.store.pending(first.job, "launch", recipe=first.recipe_name, hosts=hosts):
            facts = self.probe(first)
            job = plan_job(lr, facts)
            errors = check_facts(job, facts, wait_ready=wait_ready)
            if errors:
                raise combine(errors)
            if ensure and reusable(job, facts):
                self.emit(Note(f"job {job.job} is already running: reusing it (--ensure)"))
                return RunResult(job, reused=True, ready=True)
            result = self._launch(job, facts, wait_ready=wait_ready, keep_on_failure=keep_on_failure)
        if job.stop_after_post:
            self.emit(Note(f"stop_after_post: stopping job {job.job}"))
            stop_on_hosts(self.transport, job.hosts, job.job)
        return result

    def _launch(
        self, job: JobPlan, facts: dict[str, HostFacts], *, wait_ready: bool, keep_on_failure: bool
    ) -> RunResult:
        plan = launch_plan(job, facts, wait_ready=wait_ready)
        result = RunResult(job, notes=list(plan.notes))
        for note in plan.notes:
            self.emit(Note(note))
        with _collecting(self.emit, result) as emit:
            apply(plan, self.transport, emit=emit, error_for=launch_error, keep_on_failure=keep_on_failure)
        result.ready = wait_ready
        self._record(job, result)
        return result

    def _record(self, job: JobPlan, result: RunResult) -> None:
        ssh = job.ranks[0].host.ssh
        self.store.save(
            job.job,
            {
                "recipe": job.recipe_name,
                "recipe_source": job.recipe_source,
                "runtime": job.runtime,
                "model": job.model,
                "served_model_name": result.served_model,
                "served_models": result.served_models,
                "image": job.image,
                "port": job.port,
                "endpoint": job.endpoint(),
                "hosts": list(job.topology.hosts),
                "cluster": job.cluster,
                "ssh": ssh_to_record(ssh),
                "started_at": time.time(),
                "ready": result.ready,
                "timings": result.timings,
                "containers": [
                    {"host": r.host.address, "name": r.container.name, "rank": r.rank, "role": r.role}
                    for r in job.ranks
                ],
            },
        )

    # ---- status, logs, stop ------------------------------------------------------------------------------------
    def status(self, target: Target) -> StatusReport:
        selection = (
            self.select(target) if target.given else selection_for_records(self.store, self._default_selection())
        )
        if selection is None:
            selection = self.select(target)  # raises the "no hosts" error with its hint
        return status_report(self.transport, selection.hosts, selection.source, self.store)

    def logs(
        self, target: Target, ref: str, *, follow: bool, lines: str, all_sources: bool, on_line: Callable[[str], None]
    ) -> None:
        selection = self.select_for_job(target, ref)
        view, _inventory = find_job(self.transport, selection.hosts, ref)
        streams = logs_streams(
            self.transport, selection.hosts, view, follow=follow, lines=lines, all_sources=all_sources
        )
        pump_streams(streams, on_line)

    def follow(self, job: JobPlan, on_line: Callable[[str], None]) -> None:
        """Follow the API rank's engine log until Ctrl-C (which propagates: the caller decides what it means)."""
        api = job.api_rank
        values: dict[str, ParamValue] = {
            "CONTAINERS": [api.container.name],
            "TAIL": "50",
            "FOLLOW": True,
            "PREFIX": False,
        }
        pump_streams([self.transport.stream(api.host, render_script("logs", values))], on_line)

    def stop_plan(self, target: Target, ref: str) -> tuple[str, list[Host]]:
        """(job id or '' for all, hosts): what `stop` would act on. Finds a named job by label on the hosts."""
        selection = self.select_for_job(target, ref)
        hosts = list(selection.hosts)
        if not ref or JOB_ID_RE.match(ref):
            return ref, hosts
        view, _inventory = find_job(self.transport, hosts, ref)
        return view.job, hosts_of(hosts, view)

    def stop(self, target: Target, ref: str) -> StopResult:
        """Stop job `ref` ('' = every sparkrun job) on every host it reaches; idempotent. Hosts it cannot reach are
        listed (`PartialFailure`, exit 6): a later stop finishes the job there."""
        job, hosts = self.stop_plan(target, ref)
        result = stop_on_hosts(self.transport, hosts, job)
        if job and not result.failed:
            self.store.forget(job)
        if result.failed:
            raise PartialFailure(
                f"stopped {job or 'every job'} on {len(hosts) - len(result.failed)} of {len(hosts)} host(s); "
                f"could not reach the others: their containers may still run",
                detail="\n".join(result.failed),
                hint="run the same stop again when the hosts are back (it is idempotent)",
            )
        return result

    # ---- setup -------------------------------------------------------------------------------------------------
    def setup(self, target: Target, *, user: str | None = None) -> HostSetup:
        """Host setup and checks on the target's hosts (`sparkrun.setup`): `.check()`, `.plan()`, `.apply()`,
        `.fix()`; `user` replaces the SSH user. Fix commands it prints name the hosts the way `target` does."""
        origin = Origin(target.hosts, target.hosts_file, target.cluster, user)
        return HostSetup(lambda: self.select(target), self.transport, emit=self.emit, origin=origin)


@contextmanager
def _collecting(emit: Emit, result: RunResult) -> Iterator[Emit]:
    """Pass events on, and keep what a run result reports: timings, the names the engine serves."""

    def collect(event: Any) -> None:
        if isinstance(event, StepProgress) and event.step.script == "readiness":
            if event.key == "timing":
                name, _, secs = event.value.partition(" ")
                result.timings[f"ready_{name}"] = float(secs or 0)
            elif event.key == "models":
                result.served_models = [m for m in event.value.split(",") if m]
            elif event.key == "served" and event.value in result.served_models:
                result.served_models.remove(event.value)
                result.served_models.insert(0, event.value)
        elif isinstance(event, StepFinished) and event.result is not None and event.step.script == "launch":
            key = f"start_{event.step.phase.replace(' ', '_')}"
            result.timings[key] = max(result.timings.get(key, 0.0), round(event.result.seconds, 3))
        emit(event)

    yield collect
