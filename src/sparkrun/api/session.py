"""`Session`: the operations of the core API (see `sparkrun.api`)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sparkrun.api.results import RunPlan, RunResult, Target, collecting, placeholders
from sparkrun.clusters import HostSelection, resolve_hosts
from sparkrun.config import UserConfig, load_user_config
from sparkrun.core.apply import apply, combine
from sparkrun.core.events import Emit, Note, Warning, ignore
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
from sparkrun.shell import ParamValue, render_script
from sparkrun.transport.base import Transport

# The launch, distribution and setup layers load only in the methods that use them (their imports say "deferred:
# see above"): `status`, `logs` and `stop` need none of them and start faster for it.
if TYPE_CHECKING:
    from sparkrun.distribution.cache_ops import CacheOps
    from sparkrun.distribution.memory import MemoryCheck
    from sparkrun.distribution.report import SyncReport as Synced
    from sparkrun.distribution.runner import JobSync
    from sparkrun.launch.facts import HostFacts
    from sparkrun.launch.planner import JobPlan
    from sparkrun.launch.request import RecipeInput
    from sparkrun.recipes.resolved import ResolvedRecipe
    from sparkrun.setup import HostSetup


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
    def _recipe(
        self,
        given: RecipeInput,
        *,
        dry_run: bool,
        confirm: Callable[[str], bool] | None,
        warn: Callable[[str], None] | None = None,
    ) -> ResolvedRecipe:
        from sparkrun.launch.request import resolve_input  # deferred: see above

        def notify(message: str) -> None:
            self.emit(Note(message))

        def warning(message: str) -> None:
            self.emit(Warning(message))

        return resolve_input(
            self.runtimes, given, notify=notify, warn=warn or warning, dry_run=dry_run, confirm=confirm
        )

    def _resolve(
        self,
        given: RecipeInput,
        target: Target,
        *,
        dry_run: bool,
        confirm: Callable[[str], bool] | None,
        warn: Callable[[str], None] | None = None,
    ) -> tuple[JobPlan, Any]:
        from sparkrun.launch.guard import check_job  # deferred: see above
        from sparkrun.launch.planner import plan_job  # deferred: see above
        from sparkrun.launch.request import launch_request  # deferred: see above

        resolved = self._recipe(given, dry_run=dry_run, confirm=confirm, warn=warn)
        if dry_run and not target.given and self._default_selection() is None:
            selection = placeholders(resolved.nodes)
        else:
            selection = self.select(target)
        lr = launch_request(resolved, selection, given)
        return check_job(plan_job(lr), lr.extra_labels), lr

    def plan_run(self, given: RecipeInput, target: Target) -> RunPlan:
        """The dry-run: everything `run` would do, without a connection, deterministic."""
        from sparkrun.launch.lease import Lease, lease_seconds  # deferred: see above
        from sparkrun.launch.steps import launch_plan, probe_plan  # deferred: see above

        warnings: list[str] = []

        def warn(message: str) -> None:  # emitted as usual, and kept for the plan
            warnings.append(message)
            self.emit(Warning(message))

        job, lr = self._resolve(given, target, dry_run=True, confirm=None, warn=warn)
        sync, notes, needs = Plan(()), list[str](), dict[str, Any]()
        if given.sync:
            from sparkrun.distribution.runner import dry_run_job  # deferred: loads the model layer

            job, sync, notes, needs = dry_run_job(job, lr)
        lease = Lease(job.job, "dry-run", lease_seconds(self.config))
        plan = probe_plan(job).then(sync).then(launch_plan(job, None, wait_ready=True, lease=lease))
        return RunPlan(job, dataclasses.replace(plan, notes=(*plan.notes, *notes)), tuple(warnings), needs)

    def probe(self, job: JobPlan) -> dict[str, HostFacts]:
        from sparkrun.launch.facts import parse_facts  # deferred: see above
        from sparkrun.launch.steps import probe_plan  # deferred: see above

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
        hold: bool = False,
    ) -> RunResult:
        """Probe, start the ranks group by group, wait until ready, record the job. On failure or interrupt the
        job's containers are removed on every host before the error is raised (unless `keep_on_failure`); hosts
        out of reach remove them when their launch lease runs out. `hold`: keep renewing the lease after the launch
        instead of confirming it (`--foreground`: the job ends with this session; `release(result)` when done)."""
        from sparkrun.launch.guard import check_job  # deferred: see above
        from sparkrun.launch.planner import plan_job  # deferred: see above
        from sparkrun.launch.steps import check_facts, reusable  # deferred: see above

        first, lr = self._resolve(given, target, dry_run=False, confirm=confirm)
        hosts = list(first.topology.hosts)
        with self.store.pending(first.job, "launch", recipe=first.recipe_name, hosts=hosts):
            facts = self.probe(first)
            job = check_job(plan_job(lr, facts))
            errors = check_facts(job, facts, wait_ready=wait_ready, synced=given.sync)
            if errors:
                raise combine(errors)
            if ensure and reusable(job, facts):
                self.emit(Note(f"job {job.job} is already running: reusing it (--ensure)"))
                return RunResult(job, reused=True, ready=True)
            synced = self._distribute(job, lr, facts, given)  # the image and model on every host first
            job = synced.job
            result = self._launch(job, synced.facts, wait_ready=wait_ready, keep_on_failure=keep_on_failure, hold=hold)
            result.sync = synced.to_json()
        if job.stop_after_post:
            self.emit(Note(f"stop_after_post: stopping job {job.job}"))
            stop_on_hosts(self.transport, job.hosts, job.job)
        return result

    def _distribute(self, job: JobPlan, lr: Any, facts: dict[str, HostFacts], given: RecipeInput) -> JobSync:
        from sparkrun.distribution.runner import distribute_job  # deferred: loads the model layer

        return distribute_job(job, lr, facts, transport=self.transport, emit=self.emit, given=given)

    def _launch(
        self, job: JobPlan, facts: dict[str, HostFacts], *, wait_ready: bool, keep_on_failure: bool, hold: bool
    ) -> RunResult:
        from sparkrun.launch.lease import (  # deferred: see above
            Heartbeat,
            Lease,
            LeasedTransport,
            lease_seconds,
            renewing,
        )
        from sparkrun.launch.steps import launch_error, launch_plan  # deferred: see above

        # --no-rm keeps a failed launch's containers on purpose: no lease then.
        lease = None if keep_on_failure else Lease.new(job.job, lease_seconds(self.config))
        plan = launch_plan(job, facts, wait_ready=wait_ready, lease=lease, hold=hold)
        result = RunResult(job, notes=list(plan.notes))
        for note in plan.notes:
            self.emit(Note(note))
        heartbeat = Heartbeat(self.transport, lease, on_lost=self.transport.terminate_all) if lease else None
        transport = LeasedTransport(self.transport, heartbeat) if heartbeat else self.transport
        with collecting(self.emit, result, heartbeat) as emit, renewing(heartbeat, hold=hold):
            apply(plan, transport, emit=emit, error_for=launch_error, keep_on_failure=keep_on_failure)
        result.lease = heartbeat if hold else None
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

    def release(self, result: RunResult) -> None:
        """Stop renewing a held lease (`run(hold=True)`); the job's hosts remove it when the lease runs out unless
        it was stopped first."""
        if result.lease is not None:
            result.lease.stop()
            result.lease = None

    # ---- distribution ----------------------------------------------------------------------------------------------
    def sync(self, given: RecipeInput, target: Target, **options: Any) -> Synced:
        """`sparkrun sync`: the recipe's model and image onto every selected host, nothing launched. Options:
        `download` (auto|control|head), `verify`, `dry_run` (the steps and what the recipe needs; no connection)."""
        from sparkrun.distribution.runner import sync_request  # deferred: loads the model layer
        from sparkrun.launch.request import launch_request  # deferred: see above

        lr = launch_request(self._recipe(given, dry_run=True, confirm=None), self.select(target), given)
        return sync_request(lr, transport=self.transport, emit=self.emit, **options)

    def model_cache(self, target: Target) -> CacheOps:
        """`model-cache` on the selected hosts: `.scan()`, `.inspect(...)`, `.prune(...)`, `.delete(...)`."""
        from sparkrun.distribution.cache_ops import CacheOps  # deferred: loads the model layer

        return CacheOps(self.select(target), self.transport, self.emit)

    def vram(self, given: RecipeInput, *, offline: bool = False) -> MemoryCheck:
        """The per-host memory estimate of the recipe as `run` would plan it (`recipe vram`, `show`)."""
        from sparkrun.distribution.memory import check_request  # deferred: loads the model layer
        from sparkrun.launch.request import launch_request  # deferred: see above

        resolved = self._recipe(given, dry_run=True, confirm=None)
        return check_request(launch_request(resolved, placeholders(resolved.nodes), given), offline)

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
        from sparkrun.setup import HostSetup, Origin  # deferred: the setup layer loads only for `setup`

        origin = Origin(target.hosts, target.hosts_file, target.cluster, user)
        return HostSetup(lambda: self.select(target), self.transport, emit=self.emit, origin=origin)
