"""Apply a launch plan: probe → (pre-clean) → start ranks group by group → readiness → record the job.

Cleanup guarantee: if any step fails, or the user interrupts (Ctrl-C, SIGTERM), every container this run started is
removed on every host of the job before the error is raised (unless `keep_on_failure`), and the error names the host,
the step and the cause, with the tail of the engine's log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from sparkrun.console import Console
from sparkrun.errors import HostError, SparkrunError, WorkloadError
from sparkrun.orchestration.facts import HostFacts, parse_facts
from sparkrun.orchestration.hooks import HOOK_STEPS, Hook
from sparkrun.orchestration.hosts import Host
from sparkrun.orchestration.jobs import JobStore
from sparkrun.orchestration.jobs_view import stop_on_hosts
from sparkrun.orchestration.plan import LaunchPlan, LaunchRequest, RankPlan, plan_launch
from sparkrun.orchestration.scripts import render_script, script_text
from sparkrun.orchestration.transport import SSH_HINTS, Result, Script, Transport

LOG_LINES = 30
# Steps whose failure is the engine's (exit code WORKLOAD); others are the host's (exit code HOST).
ENGINE_STEPS = {"start", "wait-port", "port", "models", "inference"}


@dataclass
class LaunchOutcome:
    plan: LaunchPlan
    reused: bool = False
    ready: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def result_error(result: Result, *, step_prefix: str = "") -> HostError:
    """Turn a failed script result into one `host: step: cause` error, with the log tail as detail."""
    step, cause = result.failure()
    detail = result.output.blocks.get("log")
    label = f"{step_prefix}{step}"
    if result.transport_error:
        return HostError(result.host, label, cause, hint=SSH_HINTS.get(cause))
    is_hook = step.startswith(HOOK_STEPS)
    cls = WorkloadError if step in ENGINE_STEPS or is_hook else HostError
    hint = None
    if detail:
        shown = "the hook's output" if is_hook else "the engine's log"
        hint = f"{shown} is above; `sparkrun run ... --no-rm` keeps the containers for inspection"
    return cls(result.host, label, cause, detail=detail, hint=hint)


def raise_all(errors: Sequence[HostError]) -> None:
    if not errors:
        return
    first = errors[0]
    if len(errors) > 1:
        others = "\n".join(str(e) for e in errors[1:])
        first.detail = ((first.detail + "\n") if first.detail else "") + f"also failed:\n{others}"
    raise first


class Launcher:
    def __init__(self, transport: Transport, console: Console, store: JobStore | None = None) -> None:
        self.transport = transport
        self.console = console
        self.store = store or JobStore()

    # ---- probe ------------------------------------------------------------------------------------------------
    def probe(self, plan: LaunchPlan) -> dict[str, HostFacts]:
        jobs = []
        for rank in plan.ranks:
            ports = sorted({p for p in (rank.spec.api_port, rank.spec.wait_port) if p})
            peer = plan.ranks[1].host.address if rank.rank == 0 and len(plan.ranks) > 1 else plan.ranks[0].host.address
            params = {"IMAGES": [plan.image], "PORTS": [str(p) for p in ports], "JOB_ID": plan.job, "PEER": peer}
            jobs.append((rank.host, render_script("probe", params)))
        results = self.transport.run_many(jobs, timeout=60)
        errors = [result_error(r) for r in results if not r.ok]
        raise_all(errors)
        return {r.host: parse_facts(r.host, r.output) for r in results}

    def check_facts(self, plan: LaunchPlan, facts: Mapping[str, HostFacts], *, wait_ready: bool) -> None:
        errors: list[HostError] = []
        for rank in plan.ranks:
            f = facts[rank.host.address]
            if f.docker != "ok":
                hint = "install Docker and add the SSH user to the docker group"
                errors.append(HostError(rank.host.address, "probe", f"docker {f.docker}: {f.docker_detail}", hint=hint))
                continue
            if plan.pull == "never" and not f.has_image(plan.image):
                errors.append(
                    HostError(
                        rank.host.address, "probe", f"image {plan.image} is not present and --offline forbids pulling"
                    )
                )
            busy = {p for p in (rank.spec.api_port, rank.spec.wait_port) if p and p in f.ports_busy}
            if busy and not f.job_containers:
                ports = ", ".join(map(str, sorted(busy)))
                errors.append(
                    HostError(
                        rank.host.address,
                        "probe",
                        f"port {ports} is already in use",
                        hint="stop what uses it (`sparkrun status` shows sparkrun jobs) or pick another --port",
                    )
                )
        api = plan.api_rank
        if wait_ready and facts[api.host.address].docker == "ok" and not facts[api.host.address].has_curl:
            errors.append(HostError(api.host.address, "probe", "curl is not installed (needed for readiness checks)"))
        raise_all(errors)

    # ---- launch -----------------------------------------------------------------------------------------------
    def _launch_script(self, plan: LaunchPlan, rank: RankPlan) -> Script:
        multi = plan.topology.num_nodes > 1
        ib = script_text("ib_detect.sh") if plan.detect_network and multi else ""
        return render_script(
            "launch",
            {
                "CONTAINER": rank.container,
                "IMAGE": rank.image,
                "DOCKER_OPTS": list(rank.docker_opts),
                "ENTRYPOINT": rank.entrypoint,
                "CMD": list(rank.command),
                "HF_CACHE": plan.hf_cache,
                "MOUNTS": [m.volume() for m in rank.spec.mounts],
                "IB_DETECT": ib,
                "HEAD_ADDRESS": plan.topology.head_address,
                "SECRET_ENV": list(rank.secret_env),
                "PULL": plan.pull,
                "WAIT_ADDR": rank.address if rank.spec.wait_port and multi else "127.0.0.1",
                "WAIT_PORT": str(rank.spec.wait_port or ""),
                "WAIT_TIMEOUT": str(plan.readiness.rendezvous_timeout),
                "LOG_LINES": str(LOG_LINES),
                "GATED": rank.gated,
                "COPY_TARS": [c.tar_b64 for c in plan.copies] if rank.gated else [],
                "COPY_DESTS": [c.dest for c in plan.copies] if rank.gated else [],
                "PRE_HOOKS": [h.command for h in rank.pre_hooks],
                "PRE_TIMEOUTS": [str(h.timeout) for h in rank.pre_hooks],
                "PRE_LABELS": [h.label for h in rank.pre_hooks],
            },
        )

    def start_ranks(self, plan: LaunchPlan) -> dict[str, float]:
        timings: dict[str, float] = {}
        for index, group in enumerate(plan.groups()):
            names = ", ".join(f"{r.role}@{r.host.address}" for r in group)
            self.console.info(f"starting {names}")
            t0 = time.monotonic()
            results = self.transport.run_many(
                [(r.host, self._launch_script(plan, r)) for r in group],
                timeout=plan.readiness.rendezvous_timeout + 600,
            )
            raise_all([result_error(r) for r in results if not r.ok])
            timings[f"start_group_{index}"] = round(time.monotonic() - t0, 3)
        return timings

    def wait_ready(self, plan: LaunchPlan) -> dict[str, float]:
        api = plan.api_rank
        r = plan.readiness
        body = {
            "model": plan.served_model_name,
            "messages": [{"role": "user", "content": r.prompt}],
            "max_tokens": 16,
            "stream": True,
        }
        script = render_script(
            "readiness",
            {
                "CONTAINER": api.container,
                "ADDR": plan.probe_address,
                "PORT": str(api.spec.api_port or plan.port),
                "PORT_TIMEOUT": str(r.port_timeout),
                "HEALTH_TIMEOUT": str(r.health_timeout),
                "INFERENCE": r.inference,
                "INFERENCE_TIMEOUT": str(r.inference_timeout),
                "BODY": json.dumps(body),
                "LOG_LINES": str(LOG_LINES),
            },
        )
        timings: dict[str, float] = {}
        labels = {"port": "port to open", "models": "GET /v1/models", "inference": "a streamed chat completion"}
        with self.console.progress(f"waiting for {api.host.address}:{plan.port}") as progress:
            stream = self.transport.stream(api.host, script)
            for line in stream:
                if line.startswith("@sr phase "):
                    phase = line.split(" ", 2)[2]
                    progress.update(f"waiting for {labels.get(phase, phase)} on {api.host.address}:{plan.port}")
                elif line.startswith("@sr timing "):
                    name, _, secs = line.split(" ", 2)[2].partition(" ")
                    timings[f"ready_{name}"] = float(secs or 0)
            result = stream.result()
        if not result.ok:
            raise result_error(result, step_prefix="readiness ")
        return timings

    def run_post_hooks(self, plan: LaunchPlan) -> None:
        """post_exec in the API rank's container, then post_commands on this machine; the first failure raises."""
        api = plan.api_rank
        steps: list[tuple[Host, str, tuple[Hook, ...]]] = [
            (api.host, api.container, plan.post_exec),
            (Host("localhost", local=True), "", plan.post_commands),
        ]
        for host, container, hooks in steps:
            if not hooks:
                continue
            params = {
                "CONTAINER": container,
                "HOOKS": [h.command for h in hooks],
                "TIMEOUTS": [str(h.timeout) for h in hooks],
                "LABELS": [h.label for h in hooks],
                "LOG_LINES": str(LOG_LINES),
            }
            self.console.info(f"running {len(hooks)} {hooks[0].label.split('[')[0]} hook(s)")
            result = self.transport.run(
                host, render_script("hooks", params), timeout=sum(h.timeout for h in hooks) + 60
            )
            if not result.ok:
                raise result_error(result)

    def cleanup(self, plan: LaunchPlan, *, settle: bool) -> list[str]:
        """Remove this job's containers on every host of the plan; returns the hosts where that failed."""
        hosts = list({r.host.address: r.host for r in plan.ranks}.values())
        results = stop_on_hosts(self.transport, hosts, plan.job, settle=settle)
        return [f"{r.host}: {r.failure()[1]}" for r in results if not r.ok]


def run_launch(
    lr: LaunchRequest,
    *,
    launcher: Launcher,
    ensure: bool = False,
    wait_ready: bool = True,
    keep_on_failure: bool = False,
) -> LaunchOutcome:
    console = launcher.console
    plan = plan_launch(lr)  # validates the topology before any connection
    facts = launcher.probe(plan)
    head = facts[plan.ranks[0].host.address]
    fallback = lr.runtime.fallback_image(plan.image)
    notes: list[str] = []
    if fallback and not head.has_image(plan.image):
        notes.append(f"image {plan.image} is not on {head.host}; using {fallback} instead")
        lr = replace(lr, request=replace(lr.request, image=fallback))
    plan = plan_launch(lr, facts)
    launcher.check_facts(plan, facts, wait_ready=wait_ready)
    outcome = LaunchOutcome(plan=plan, notes=notes)
    for note in notes:
        console.info(f"note: {note}")

    running = [facts[r.host.address].job_containers.get(r.container) for r in plan.ranks]
    if ensure and all(state == "running" for state in running):
        outcome.reused = True
        return outcome
    if any(facts[r.host.address].job_containers for r in plan.ranks):
        console.info(f"replacing the earlier containers of job {plan.job}")
        launcher.cleanup(plan, settle=False)

    started = time.time()
    with launcher.store.pending(plan.job, "launch", recipe=plan.recipe_name, hosts=list(plan.topology.hosts)):
        in_flight = True
        try:
            outcome.timings.update(launcher.start_ranks(plan))
            in_flight = False
            if wait_ready:
                outcome.timings.update(launcher.wait_ready(plan))
                outcome.ready = True
            launcher.run_post_hooks(plan)
        except (SparkrunError, KeyboardInterrupt) as exc:
            launcher.transport.terminate_all()
            if keep_on_failure:
                console.info(f"--no-rm: leaving the containers of job {plan.job} in place")
            else:
                console.info(f"removing job {plan.job} from {', '.join(plan.topology.hosts)}")
                leftovers = launcher.cleanup(plan, settle=in_flight or isinstance(exc, KeyboardInterrupt))
                for line in leftovers:
                    console.warn(f"cleanup failed: {line}")
            raise
    record_job(launcher.store, plan, outcome, started)
    if plan.stop_after_post:
        console.info(f"stop_after_post: stopping job {plan.job}")
        launcher.cleanup(plan, settle=False)
    return outcome


def record_job(store: JobStore, plan: LaunchPlan, outcome: LaunchOutcome, started: float) -> None:
    store.save(
        plan.job,
        {
            "recipe": plan.recipe_name,
            "recipe_source": plan.recipe_source,
            "runtime": plan.runtime,
            "model": plan.model,
            "served_model_name": plan.served_model_name,
            "image": plan.image,
            "port": plan.port,
            "endpoint": plan.endpoint(),
            "hosts": list(plan.topology.hosts),
            "containers": [
                {"host": r.host.address, "name": r.container, "rank": r.rank, "role": r.role} for r in plan.ranks
            ],
            "started_at": started,
            "ready": outcome.ready,
            "timings": outcome.timings,
        },
    )
