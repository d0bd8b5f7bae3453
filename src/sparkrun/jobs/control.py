"""What `status`, `logs` and `stop` do, as data: they return reports and plans and print nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sparkrun.core.apply import run_phase
from sparkrun.core.plan import Plan, Step
from sparkrun.errors import HostError
from sparkrun.hosts import Host
from sparkrun.jobs.inventory import Inventory, JobView, collect
from sparkrun.jobs.records import JobStore
from sparkrun.shell import ParamValue, render_script
from sparkrun.transport.base import Stream, Transport
from sparkrun.transport.ssh import ssh_hint


@dataclass(frozen=True)
class StatusReport:
    """The `status --json` document (stable; documented in the README)."""

    data: dict[str, Any]

    @property
    def unreachable(self) -> list[dict[str, Any]]:
        return [h for h in self.data["hosts"] if not h["reachable"]]

    def to_json(self) -> dict[str, Any]:
        return self.data


def _endpoint(view: JobView) -> str | None:
    port = view.label("port")
    head = view.label("head")
    return f"http://{head}:{port}/v1" if head and port else None


def status_report(transport: Transport, hosts: Sequence[Host], source: str, store: JobStore) -> StatusReport:
    inventory = collect(transport, hosts)
    unreachable = inventory.unreachable
    jobs = []
    for view in inventory.jobs:
        entry = view.to_json(unreachable)
        record = store.load(view.job) or {}
        entry["endpoint"] = record.get("endpoint") or _endpoint(view)
        if record.get("served_models"):
            entry["served_models"] = record["served_models"]
        jobs.append(entry)
    now = time.time()
    pending = [
        {
            "job": op.job,
            "operation": op.operation,
            "pid": op.pid,
            "seconds": round(now - op.started_at, 1),
            "stale": op.stale,
            **op.data,
        }
        for op in store.pending_ops()
    ]
    data = {
        "hosts": [{"host": h.host, "reachable": h.reachable, "error": h.error} for h in inventory.hosts],
        "source": source,
        "jobs": jobs,
        "pending": pending,
        "total_containers": sum(len(v.containers) for v in inventory.jobs),
    }
    return StatusReport(data)


def find_job(transport: Transport, hosts: Sequence[Host], ref: str) -> tuple[JobView, Inventory]:
    inventory = collect(transport, hosts)
    return inventory.find(ref), inventory


def hosts_of(hosts: Sequence[Host], view: JobView) -> list[Host]:
    known = {h.address: h for h in hosts}
    return [known[h] for h in view.hosts if h in known] or list(hosts)


def logs_streams(
    transport: Transport, hosts: Sequence[Host], view: JobView, *, follow: bool, lines: str, all_sources: bool
) -> list[Stream]:
    containers = sorted(view.containers, key=lambda c: c.rank)
    if not all_sources:
        containers = [c for c in containers if c.role in {"head", "solo"}] or containers[:1]
    by_host: dict[str, list[str]] = {}
    for c in containers:
        by_host.setdefault(c.host, []).append(c.name)
    known = {h.address: h for h in hosts}
    prefix = len(containers) > 1
    streams = []
    for host, names in by_host.items():
        params: dict[str, ParamValue] = {"CONTAINERS": names, "TAIL": lines, "FOLLOW": follow, "PREFIX": prefix}
        streams.append(transport.stream(known.get(host, Host(host)), render_script("logs", params)))
    return streams


def pump_streams(streams: Sequence[Stream], on_line: Callable[[str], None]) -> None:
    """Deliver lines from several streams as they arrive; Ctrl-C stops the streams and propagates."""
    lock = threading.Lock()

    def drain(stream: Stream) -> None:
        for line in stream:
            with lock:
                on_line(line)

    threads = [threading.Thread(target=drain, args=(s,), daemon=True) for s in streams]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except KeyboardInterrupt:
        for s in streams:
            s.stop()
        raise
    errors = [r for r in (s.result() for s in streams) if not r.ok]
    if errors:
        step, cause = errors[0].failure()
        hint = ssh_hint(cause) if errors[0].transport_error else None
        raise HostError(errors[0].host, "logs" if step == "logs" else f"logs {step}", cause, hint=hint)


STOP_TIMEOUT_S = 120.0


def stop_steps(hosts: Sequence[Host], job: str, *, settle: bool = False, phase: str = "stop") -> tuple[Step, ...]:
    """stop.sh for `job` ('' = every sparkrun container) on each host. `settle` keeps watching for 2 s for
    containers an interrupted `docker run` may still create."""
    values: dict[str, ParamValue] = {"JOB_ID": job, "STOP_TIMEOUT": "10", "SETTLE": "2" if settle else "0"}
    what = f"job {job}" if job else "every sparkrun container"
    return tuple(Step(h, "stop", values, f"remove {what} on {h.address}", phase, timeout=STOP_TIMEOUT_S) for h in hosts)


@dataclass(frozen=True)
class StopResult:
    job: str  # '' = every sparkrun job
    hosts: tuple[str, ...]
    removed: int
    failed: tuple[str, ...]  # "host: step: cause"

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.job or None,
            "hosts": list(self.hosts),
            "removed": self.removed,
            "failed": list(self.failed),
        }


def stop_plan(hosts: Sequence[Host], job: str) -> Plan:
    return Plan(stop_steps(hosts, job))


def stop_on_hosts(transport: Transport, hosts: Sequence[Host], job: str) -> StopResult:
    """stop.sh on every host in parallel; acts on the hosts it reaches and lists the others."""
    results = run_phase(transport, stop_plan(hosts, job).steps)
    removed = sum(int(r.output.last("count") or 0) for r in results if r.ok)
    failed = tuple(f"{r.host}: {': '.join(r.failure())}" for r in results if not r.ok)
    return StopResult(job, tuple(h.address for h in hosts), removed, failed)
