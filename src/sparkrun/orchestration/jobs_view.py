"""The status, logs and stop operations behind the CLI commands of the same names."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from sparkrun.console import Console
from sparkrun.errors import HostError, PartialFailure
from sparkrun.orchestration.hosts import Host, HostSelection
from sparkrun.orchestration.inventory import JOB_ID_RE, Inventory, JobView, collect
from sparkrun.orchestration.jobs import JobStore
from sparkrun.orchestration.scripts import ParamValue, render_script
from sparkrun.orchestration.transport import Result, Transport


def status_report(transport: Transport, selection: HostSelection) -> dict[str, Any]:
    """The `status --json` document (stable; documented in the README)."""
    inventory = collect(transport, selection.hosts)
    unreachable = inventory.unreachable
    store = JobStore()
    jobs = []
    for view in inventory.jobs:
        entry = view.to_json(unreachable)
        record = store.load(view.job) or {}
        entry["endpoint"] = record.get("endpoint") or _endpoint(view)
        jobs.append(entry)
    pending = [
        {
            "job": op.job,
            "operation": op.operation,
            "pid": op.pid,
            "seconds": round(time.time() - op.started_at, 1),
            "stale": op.stale,
            **op.data,
        }
        for op in store.pending_ops()
    ]
    return {
        "hosts": [{"host": h.host, "reachable": h.reachable, "error": h.error} for h in inventory.hosts],
        "source": selection.source,
        "jobs": jobs,
        "pending": pending,
        "total_containers": sum(len(v.containers) for v in inventory.jobs),
    }


def _endpoint(view: JobView) -> str | None:
    port = view.label("port")
    head = view.label("head")
    return f"http://{head}:{port}/v1" if head and port else None


def print_status(console: Console, report: dict[str, Any]) -> None:
    rows = []
    for job in report["jobs"]:
        for c in job["containers"]:
            state = c["state"] if c["state"] == "running" else f"{c['state']} ({c['exit_code']})"
            rows.append((job["job"], job["recipe"], c["role"], c["host"], state, job["endpoint"] or ""))
    if rows:
        console.table(["JOB", "RECIPE", "ROLE", "HOST", "STATE", "ENDPOINT"], rows)
    else:
        console.out(f"no sparkrun jobs on {len(report['hosts'])} host(s) ({report['source']})")
    for op in report["pending"]:
        what = "stale (its process is gone)" if op["stale"] else f"in progress for {op['seconds']:.0f}s"
        console.out(f"{op['operation']} {op['job']} ({op.get('recipe', '?')}): {what}")
    for host in report["hosts"]:
        if not host["reachable"]:
            console.out(f"{host['host']}: unreachable: {host['error']}")


def _hosts_of(selection: HostSelection, view: JobView) -> list[Host]:
    known = {h.address: h for h in selection.hosts}
    return [known[h] for h in view.hosts if h in known] or list(selection.hosts)


def show_logs(
    transport: Transport, selection: HostSelection, ref: str, *, follow: bool, lines: str, all_sources: bool
) -> None:
    inventory = collect(transport, selection.hosts)
    view = inventory.find(ref)
    containers = sorted(view.containers, key=lambda c: c.rank)
    if not all_sources:
        containers = [c for c in containers if c.role in {"head", "solo"}] or containers[:1]
    by_host: dict[str, list[str]] = {}
    for c in containers:
        by_host.setdefault(c.host, []).append(c.name)
    hosts = {h.address: h for h in selection.hosts}
    prefix = len(containers) > 1
    streams = []
    for host, names in by_host.items():
        params: dict[str, ParamValue] = {"CONTAINERS": names, "TAIL": lines, "FOLLOW": follow, "PREFIX": prefix}
        streams.append(transport.stream(hosts[host], render_script("logs", params)))
    pump_streams(streams)


def pump_streams(streams: list[Any]) -> None:
    """Print lines from several streams as they arrive; Ctrl-C detaches (the job keeps running)."""
    lock = threading.Lock()

    def drain(stream: Any) -> None:
        for line in stream:
            with lock:
                Console.out(line)

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
        raise HostError(errors[0].host, f"logs {step}", cause)


def stop_jobs(console: Console, transport: Transport, selection: HostSelection, ref: str, *, dry_run: bool) -> None:
    hosts = list(selection.hosts)
    job = ref
    if ref and not JOB_ID_RE.match(ref):
        inventory: Inventory = collect(transport, hosts)
        view = inventory.find(ref)
        job = view.job
        hosts = _hosts_of(selection, view)
    what = f"job {job}" if job else "every sparkrun job"
    if dry_run:
        console.out(f"would stop {what} on {', '.join(h.address for h in hosts)}")
        return
    results = stop_on_hosts(transport, hosts, job)
    removed = 0
    failed = []
    for r in results:
        if r.ok:
            removed += int(r.output.last("count") or 0)
        else:
            step, cause = r.failure()
            failed.append(f"{r.host}: {step}: {cause}")
    if job:
        JobStore().forget(job)
    console.info(f"stopped {what}: removed {removed} container(s) on {len(results) - len(failed)} host(s)")
    if failed:
        raise PartialFailure(
            f"could not reach {len(failed)} of {len(results)} host(s); their containers may still run",
            detail="\n".join(failed),
            hint="run the same stop again when the hosts are back (it is idempotent)",
        )


def stop_on_hosts(transport: Transport, hosts: Sequence[Host], job: str, *, settle: bool = False) -> list[Result]:
    """Run stop.sh for `job` ('' = every sparkrun container) on each host, in parallel; one result per host.
    `settle` keeps watching for 2 s for containers an interrupted `docker run` may still create."""
    script = render_script("stop", {"JOB_ID": job, "STOP_TIMEOUT": "10", "SETTLE": "2" if settle else "0"})
    return transport.run_many([(h, script) for h in hosts], timeout=120)
