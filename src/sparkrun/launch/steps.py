"""The steps of a launch, as plans for the apply engine: probe (one round trip per host), then take the launch lease,
start the ranks group by group, wait until ready, run the post hooks, confirm the lease. Pure: facts in, `Plan` out.

Cleanup guarantee: the launch plan's `undo` removes the job's containers on every host; the apply engine runs it when
a step fails or the user interrupts (unless `--no-rm`). Hosts it cannot reach clean up after themselves: their lease
runs out (`launch/lease.py`).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence

from sparkrun.core.plan import Plan, Step
from sparkrun.errors import HostError, WorkloadError
from sparkrun.hosts import Host
from sparkrun.jobs.control import stop_steps
from sparkrun.launch.container import HF_CACHE_IN_CONTAINER, docker_run_argv, env_file, home_path
from sparkrun.launch.facts import HostFacts
from sparkrun.launch.hooks import HOOK_STEPS, Hook
from sparkrun.launch.lease import Lease, confirm_steps, start_steps
from sparkrun.launch.planner import JobPlan, RankPlan
from sparkrun.launch.readiness import api_key
from sparkrun.shell import ParamValue, script_text
from sparkrun.transport.base import Result
from sparkrun.transport.ssh import ssh_hint

LOG_LINES = 30
PROBE_TIMEOUT_S = 60.0
# Steps whose failure is the engine's (exit code WORKLOAD); others are the host's (exit code HOST).
ENGINE_STEPS = {"start", "wait-port", "port", "models", "inference"}
LOCAL = Host("localhost", local=True)


def launch_error(step: Step, result: Result) -> HostError:
    """A failed launch step as one `host: step: cause` error, with the engine's log tail (or hook output)."""
    name, cause = result.failure()
    if result.transport_error:
        return HostError(result.host, name, cause, hint=ssh_hint(cause))
    label = f"readiness {name}" if step.script == "readiness" else name
    detail = result.output.blocks.get("log")
    if "no space left on device" in cause.lower():  # the host's disk, whichever step noticed it
        return HostError(result.host, label, cause, detail=detail, hint=f"free disk space on {result.host}")
    is_hook = name.startswith(HOOK_STEPS)
    cls = WorkloadError if name in ENGINE_STEPS or is_hook else HostError
    hint = _readiness_hint(cause) if step.script == "readiness" else None
    if detail and hint is None:
        shown = "the hook's output" if is_hook else "the engine's log"
        hint = f"{shown} is above; `sparkrun run ... --no-rm` keeps the containers for inspection"
    return cls(result.host, label, cause, detail=detail, hint=hint)


def _readiness_hint(cause: str) -> str | None:
    """What to do when the server itself refused readiness's request (a 4xx answer ends readiness at once)."""
    if "HTTP 401" in cause or "HTTP 403" in cause:
        return (
            "the engine wants an API key: set it where sparkrun can read it (`--api-key KEY` in the recipe's "
            "command, or VLLM_API_KEY / OPENAI_API_KEY in its env; a secret from your environment: `-e KEY=...`)"
        )
    if "HTTP 404" in cause:
        return (
            "the engine does not serve the OpenAI API at /v1 on this port (a route prefix such as "
            "--api-prefix?), or does not know the model; its answer is above"
        )
    if "HTTP 4" in cause:
        return "the engine rejected sparkrun's readiness request; its answer is above"
    return None


# ---- probe ------------------------------------------------------------------------------------------------------


def probe_plan(job: JobPlan) -> Plan:
    multi = job.topology.num_nodes > 1
    images = [job.image] + ([job.image_fallback] if job.image_fallback else [])
    steps = []
    for rank in job.ranks:
        ports = sorted({p for p in (rank.spec.api_port, rank.spec.wait_port) if p})
        peer = job.ranks[1].host.address if rank.rank == 0 and multi else job.ranks[0].host.address
        values: dict[str, ParamValue] = {
            "IMAGES": images,
            "PORTS": [str(p) for p in ports],
            "JOB_ID": job.job,
            "PEER": peer,
            "IB_DETECT": script_text("ib_detect.sh") if multi else "",
            "HEAD_ADDRESS": job.topology.hosts[0],
        }
        what = "docker, image, ports, GPU" + (", network interfaces" if multi else "")
        steps.append(
            Step(rank.host, "probe", values, f"probe {rank.host.address}: {what}", "probe", timeout=PROBE_TIMEOUT_S)
        )
    return Plan(tuple(steps))


def check_facts(
    job: JobPlan, facts: Mapping[str, HostFacts], *, wait_ready: bool, synced: bool = False
) -> list[HostError]:
    """What the probe found that stops this launch before anything starts. `synced`: distribution copies the image
    to the hosts that lack it, so under --offline one host having it is enough."""
    errors: list[HostError] = []
    shared = synced and any(facts[h.address].has_image(job.image) for h in job.hosts)
    for rank in job.ranks:
        f = facts[rank.host.address]
        if f.docker != "ok":
            hint = "install Docker and add the SSH user to the docker group (`sparkrun setup docker-group`)"
            errors.append(HostError(f.host, "probe", f"docker {f.docker}: {f.docker_detail}", hint=hint))
            continue
        if f.ib_error:
            errors.append(HostError(f.host, "probe", f"network detection: {f.ib_error}"))
        present = shared or f.has_image(job.image) or (image_source(job, facts) and _has_source(job, f))
        if job.pull == "never" and not present:
            errors.append(HostError(f.host, "probe", f"image {job.image} is not present and --offline forbids pulling"))
        errors += _port_clash(f, [p for p in (rank.spec.api_port, rank.spec.wait_port) if p])
    api = facts[job.api_rank.host.address]
    if wait_ready and api.docker == "ok" and not api.has_curl:
        errors.append(HostError(api.host, "probe", "curl is not installed (needed for readiness checks)"))
    return errors


def _port_clash(f: HostFacts, ports: Sequence[int]) -> list[HostError]:
    """A port of this rank that another sparkrun job holds here (named), or that something else listens on."""
    for port in sorted(ports):
        holder = f.port_holders.get(port)
        if holder:
            job = holder.split(" ", 1)[0]
            hint = f"stop that job first (`sparkrun stop {job}`) or pick another --port"
            return [HostError(f.host, "probe", f"port {port} is taken by job {holder}", hint=hint)]
    busy = sorted(p for p in ports if p in f.ports_busy)
    if busy and not f.job_containers:
        hint = "stop what uses it (`sparkrun status` shows sparkrun jobs) or pick another --port"
        return [HostError(f.host, "probe", f"port {', '.join(map(str, busy))} is already in use", hint=hint)]
    return []


def _has_source(job: JobPlan, facts: HostFacts) -> bool:
    return job.image_fallback is not None and facts.has_image(job.image_fallback)


def image_source(job: JobPlan, facts: Mapping[str, HostFacts] | None) -> str | None:
    """The image to tag as `job.image` where it is absent: the runtime's fallback, when the head lacks the image."""
    if job.image_fallback is None or facts is None:
        return None
    head = facts.get(job.ranks[0].host.address)
    return job.image_fallback if head is not None and not head.has_image(job.image) else None


def reusable(job: JobPlan, facts: Mapping[str, HostFacts]) -> bool:
    """Every rank's container of this job is already running (`--ensure` keeps it)."""
    return all(facts[r.host.address].job_containers.get(r.container.name) == "running" for r in job.ranks)


# ---- launch -----------------------------------------------------------------------------------------------------


def _launch_step(
    job: JobPlan, rank: RankPlan, group: int, source: str | None, home: str | None, lease: Lease | None
) -> Step:
    secrets = env_file(rank.secrets) if rank.secrets else b""
    copies = job.copies if rank.gated else ()
    multi = job.topology.num_nodes > 1
    values: dict[str, ParamValue] = {
        "CONTAINER": rank.container.name,
        "DOCKER_ARGV": docker_run_argv(rank.container),
        "IMAGE": rank.container.image,
        "IMAGE_SOURCE": source or "",
        "PULL": job.pull,
        "ENSURE_DIRS": [home_path(job.hf_cache, home)] if home else [],
        # A runtime's own mounts (e.g. trtllm's ~/.ssh) must exist: `docker -v` would create an empty root-owned dir.
        "REQUIRE_PATHS": [m.source for m in rank.container.mounts if m.target != HF_CACHE_IN_CONTAINER],
        "SECRET_BYTES": str(len(secrets)),
        "COPY_BYTES": [str(c.size) for c in copies],
        "COPY_DESTS": [c.dest for c in copies],
        "GATED": rank.gated,
        "PRE_HOOKS": [h.command for h in rank.pre_hooks],
        "PRE_TIMEOUTS": [str(h.timeout) for h in rank.pre_hooks],
        "PRE_LABELS": [h.label for h in rank.pre_hooks],
        "WAIT_ADDR": rank.address if rank.spec.wait_port and multi else "127.0.0.1",
        "WAIT_PORT": str(rank.spec.wait_port or ""),
        "WAIT_TIMEOUT": str(job.readiness.rendezvous_timeout),
        "LOG_LINES": str(LOG_LINES),
        "JOB_ID": job.job,
        "LEASE_TOKEN": lease.token if lease else "",
    }
    summary = f"start {rank.role} {rank.container.name} on {rank.host.address}"
    if rank.spec.wait_port:
        summary += f", then wait for port {rank.spec.wait_port}"
    stdin = secrets + b"".join(c.tar for c in copies)
    return Step(
        rank.host,
        "launch",
        values,
        summary,
        f"start group {group}",
        stdin=stdin,
        timeout=job.readiness.rendezvous_timeout + 600.0,
        detail=(shlex.join(docker_run_argv(rank.container)),),
    )


def _json_forms(text: str) -> list[str]:
    """`text` as a JSON string, as servers may write it: with \\u escapes (Python's default) and without."""
    return sorted({json.dumps(text), json.dumps(text, ensure_ascii=False)})


def readiness_step(job: JobPlan) -> Step:
    api = job.api_rank
    r = job.readiness
    key = api_key(api.spec.argv, {**dict(api.container.env), **dict(api.secrets)})
    values: dict[str, ParamValue] = {
        "CONTAINER": api.container.name,
        "ADDR": job.probe_address,
        "PORT": str(job.api_port),
        "PORT_TIMEOUT": str(r.port_timeout),
        "HEALTH_TIMEOUT": str(r.health_timeout),
        "INFERENCE": r.inference,
        "INFERENCE_TIMEOUT": str(r.inference_timeout),
        "MODEL": job.served_model_name,
        "MODEL_JSON": _json_forms(job.served_model_name),
        "PROMPT": r.prompt,
        "KEY_BYTES": str(len(key.encode())) if key else "0",
        "LOG_LINES": str(LOG_LINES),
    }
    what = "port -> GET /v1/models" + (" -> a streamed chat completion" if r.inference else "")
    return Step(
        api.host,
        "readiness",
        values,
        f"wait until ready on {api.host.address}:{job.api_port}: {what}",
        "ready",
        stdin=(key or "").encode(),
        timeout=r.budget,
        stream=True,
    )


def _hook_step(host: Host, container: str, hooks: Sequence[Hook], phase: str) -> Step:
    values: dict[str, ParamValue] = {
        "CONTAINER": container,
        "HOOKS": [h.command for h in hooks],
        "TIMEOUTS": [str(h.timeout) for h in hooks],
        "LABELS": [h.label for h in hooks],
        "LOG_LINES": str(LOG_LINES),
    }
    where = f"in {container}" if container else "on this machine"
    return Step(
        host,
        "hooks",
        values,
        f"run {len(hooks)} {phase} hook(s) {where}",
        phase,
        timeout=sum(h.timeout for h in hooks) + 60.0,
        detail=tuple(h.command for h in hooks),
    )


def launch_plan(
    job: JobPlan,
    facts: Mapping[str, HostFacts] | None,
    *,
    wait_ready: bool,
    lease: Lease | None = None,
    hold: bool = False,
) -> Plan:
    """Take the lease, start the ranks (group by group), wait until ready, run post hooks, confirm the lease (unless
    `hold`: the caller keeps renewing it); undo removes the job everywhere."""
    source = image_source(job, facts)
    steps: list[Step] = []
    if facts is not None:
        old = [h for h in job.hosts if facts[h.address].job_containers]
        steps += stop_steps(old, job.job, phase="replace")
    if lease is not None:
        steps += start_steps(lease, job)
    for index, group in enumerate(job.groups()):
        for rank in group:
            home = facts[rank.host.address].home if facts is not None else None
            steps.append(_launch_step(job, rank, index, source, home, lease))
    if wait_ready:
        steps.append(readiness_step(job))
    if job.post_exec:
        steps.append(_hook_step(job.api_rank.host, job.api_rank.container.name, job.post_exec, "post_exec"))
    if job.post_commands:
        steps.append(_hook_step(LOCAL, "", job.post_commands, "post_commands"))
    if lease is not None and not hold:
        steps += confirm_steps(lease, job.hosts)
    notes = (
        [f"image {job.image} is not on {job.ranks[0].host.address}: running {source} (tagged {job.image})"]
        if source
        else []
    )
    if job.image_fallback and facts is None:
        notes.append(f"if {job.image} is absent on the head, {job.image_fallback} runs instead (tagged {job.image})")
    return Plan(tuple(steps), undo=stop_steps(job.hosts, job.job, settle=True, phase="undo"), notes=tuple(notes))
