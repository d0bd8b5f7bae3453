"""What the core API takes and returns: targets, run plans, run results."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sparkrun.clusters import Cluster, HostSelection
from sparkrun.core.events import Emit, StepFinished, StepProgress
from sparkrun.core.plan import Plan
from sparkrun.hosts import Host

if TYPE_CHECKING:  # the launch layer loads only for commands that launch (see api/session.py)
    from sparkrun.launch.lease import Heartbeat
    from sparkrun.launch.planner import JobPlan


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
    distribution: dict[str, Any] = field(default_factory=dict)  # what the job needs (model, image, memory)


@dataclass
class RunResult:
    job: JobPlan
    reused: bool = False
    ready: bool = False
    served_models: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    sync: dict[str, Any] = field(default_factory=dict)  # what distribution moved, per host
    lease: Heartbeat | None = field(default=None, repr=False)  # still renewing (`run(hold=True)`): `Session.release`

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
            "sync": self.sync,
        }


def placeholders(count: int) -> HostSelection:
    from sparkrun.recipes.resolved import preview_hosts  # deferred: only a dry-run without hosts needs it

    names = preview_hosts(count)
    return HostSelection(tuple(Host(n) for n in names), "no hosts given: placeholders", Cluster("", names))


@contextmanager
def collecting(emit: Emit, result: RunResult, heartbeat: Heartbeat | None = None) -> Iterator[Emit]:
    """Pass events on, and keep what a run result reports: timings, the names the engine serves. Arms the lease
    heartbeat on each host whose lease started, and says how hosts the cleanup could not reach clean up."""
    from sparkrun.launch.lease import lease_events  # deferred: only a launch collects (see api/session.py)

    def collect(event: Any) -> None:
        if isinstance(event, StepProgress) and event.step.script == "readiness":
            if event.key == "timing":
                name, _, secs = event.value.partition(" ")
                result.timings[f"ready_{name}"] = float(secs or 0)
            elif event.key == "models":
                result.served_models = [m for m in event.value.split(",") if m]
            elif event.key == "served":  # the name readiness used first (listed oddly when JSON-escaped)
                if event.value in result.served_models:
                    result.served_models.remove(event.value)
                result.served_models.insert(0, event.value)
        elif isinstance(event, StepFinished) and event.result is not None and event.step.script == "launch":
            key = f"start_{event.step.phase.replace(' ', '_')}"
            result.timings[key] = max(result.timings.get(key, 0.0), round(event.result.seconds, 3))
        emit(event)
        lease_events(heartbeat, event, emit)

    yield collect
