"""What runs where: sparkrun containers found by label on each host (one round trip per host, in parallel), grouped
into jobs. Works from any control machine: everything needed is in the container labels."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sparkrun.errors import InputError
from sparkrun.hosts import Host
from sparkrun.shell import render_script
from sparkrun.transport.base import Transport

_EXITED = re.compile(r"^Exited \((-?\d+)\)")


@dataclass(frozen=True)
class ContainerInfo:
    host: str
    name: str
    job: str
    rank: int
    role: str
    state: str  # running, exited, created, ...
    exit_code: int
    image: str
    created_at: str
    labels: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "name": self.name,
            "rank": self.rank,
            "role": self.role,
            "state": self.state,
            "exit_code": self.exit_code,
            "image": self.image,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class HostStatus:
    host: str
    reachable: bool
    error: str | None = None


@dataclass
class JobView:
    job: str
    labels: dict[str, str]
    containers: list[ContainerInfo] = field(default_factory=list)

    def label(self, key: str) -> str:
        return self.labels.get(f"sparkrun.{key}", "")

    @property
    def hosts(self) -> list[str]:
        listed = [h for h in self.label("hosts").split(",") if h]
        return listed or sorted({c.host for c in self.containers})

    def state(self, unreachable: set[str]) -> str:
        expected = self.hosts
        running = [c for c in self.containers if c.state == "running"]
        if any(h in unreachable for h in expected):
            return "unknown"
        if len(running) == len(expected) == len(self.containers):
            return "running"
        if not running:
            return "exited"
        return "degraded"

    def to_json(self, unreachable: set[str]) -> dict[str, Any]:
        port = self.label("port")
        return {
            "job": self.job,
            "state": self.state(unreachable),
            "recipe": self.label("recipe"),
            "runtime": self.label("runtime"),
            "model": self.label("model"),
            "served_model_name": self.label("served_model_name"),
            "port": int(port) if port.isdigit() else None,
            "hosts": self.hosts,
            "head": self.label("head"),
            "cluster": self.label("cluster") or None,
            "containers": [c.to_json() for c in sorted(self.containers, key=lambda c: c.rank)],
        }


@dataclass
class Inventory:
    hosts: list[HostStatus]
    jobs: list[JobView]

    @property
    def unreachable(self) -> set[str]:
        return {h.host for h in self.hosts if not h.reachable}

    def find(self, ref: str) -> JobView:
        """A job by id, id prefix or recipe name; ambiguity is an error listing the candidates."""
        exact = [j for j in self.jobs if j.job == ref]
        if exact:
            return exact[0]
        matches = [j for j in self.jobs if j.job.startswith(ref) or j.label("recipe") == ref]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            where = ", ".join(h.host for h in self.hosts)
            raise InputError(f"no sparkrun job {ref!r} on {where}", hint="`sparkrun status` lists the jobs")
        listed = ", ".join(f"{j.job} ({j.label('recipe')})" for j in matches)
        raise InputError(f"{ref!r} matches several jobs: {listed}", hint="give the job id")


def _container(host: str, data: Mapping[str, Any]) -> ContainerInfo | None:
    """One entry of the Engine API's `GET /containers/json`."""
    labels = {str(k): str(v) for k, v in (data.get("Labels") or {}).items()}
    job = labels.get("sparkrun.job")
    if not job:
        return None
    names = data.get("Names") or [""]
    rank = labels.get("sparkrun.rank", "0")
    exited = _EXITED.match(str(data.get("Status", "")))
    return ContainerInfo(
        host=host,
        name=str(names[0]).lstrip("/"),
        job=job,
        rank=int(rank) if rank.isdigit() else 0,
        role=labels.get("sparkrun.role", ""),
        state=str(data.get("State", "")),
        exit_code=int(exited.group(1)) if exited else 0,
        image=str(data.get("Image", "")),
        created_at=str(data.get("Created", "")),
        labels=labels,
    )


def parse_containers(host: str, raw: str) -> list[ContainerInfo]:
    try:
        entries = json.loads(raw)
    except ValueError:
        return []
    if not isinstance(entries, list):
        return []
    found = (_container(host, e) for e in entries if isinstance(e, Mapping))
    return [c for c in found if c is not None]


def collect(transport: Transport, hosts: Sequence[Host], job: str = "") -> Inventory:
    script = render_script("status", {"JOB_ID": job})
    results = transport.run_many([(h, script) for h in hosts], timeout=30)
    statuses: list[HostStatus] = []
    jobs: dict[str, JobView] = {}
    for result in results:
        if not result.ok:
            step, cause = result.failure()
            statuses.append(HostStatus(result.host, False, f"{step}: {cause}"))
            continue
        statuses.append(HostStatus(result.host, True))
        for info in parse_containers(result.host, result.output.last("containers") or "[]"):
            view = jobs.setdefault(info.job, JobView(job=info.job, labels=info.labels))
            view.containers.append(info)
    return Inventory(hosts=statuses, jobs=sorted(jobs.values(), key=lambda j: j.job))
