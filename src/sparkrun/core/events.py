"""What the core reports while it works. The core never prints: it calls `emit(event)`, and whoever called it (the
CLI, a test, another program) decides what to show. Every event has `to_json()` for machine consumers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sparkrun.core.plan import Step
from sparkrun.transport.base import Result


@dataclass(frozen=True)
class Event:
    kind = "event"

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind}


@dataclass(frozen=True)
class Note(Event):
    """Something the user should know (a choice the core made, a fallback, a reuse)."""

    message: str
    kind = "note"

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "message": self.message}


@dataclass(frozen=True)
class Warning(Event):
    message: str
    kind = "warning"

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "message": self.message}


@dataclass(frozen=True)
class PhaseStarted(Event):
    phase: str
    steps: tuple[Step, ...]
    kind = "phase"

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "phase": self.phase, "steps": [s.to_json() for s in self.steps]}


@dataclass(frozen=True)
class StepProgress(Event):
    """A line a streaming step reported while running (`@sr KEY VALUE`)."""

    step: Step
    key: str
    value: str
    kind = "progress"

    def to_json(self) -> dict[str, Any]:
        return {
            "event": self.kind,
            "host": self.step.host.address,
            "script": self.step.script,
            "key": self.key,
            "value": self.value,
        }


@dataclass(frozen=True)
class StepFinished(Event):
    step: Step
    result: Result | None  # None: a no-op
    kind = "step"

    @property
    def ok(self) -> bool:
        return self.result is None or self.result.ok

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"event": self.kind, **self.step.to_json(), "ok": self.ok}
        if self.result is not None:
            data["seconds"] = round(self.result.seconds, 3)
            if not self.result.ok:
                data["step"], data["cause"] = self.result.failure()
        return data


@dataclass(frozen=True)
class Cleanup(Event):
    """The core is undoing what a failed or interrupted run started."""

    hosts: tuple[str, ...]
    reason: str
    failed: tuple[str, ...] = field(default=())
    kind = "cleanup"

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "hosts": list(self.hosts), "reason": self.reason, "failed": list(self.failed)}


@dataclass(frozen=True)
class TransferProgress(Event):
    """Bytes a host holds so far of something being copied to it or downloaded (distribution)."""

    host: str  # a host address, or "this machine" for a download here
    item: str  # "model org/name", "image name:tag", "download org/name"
    done: int
    total: int  # 0: not known in advance
    kind = "transfer"

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "host": self.host, "item": self.item, "done": self.done, "total": self.total}


@dataclass(frozen=True)
class TransferFinished(Event):
    """One host's share of a copy or download, done (or failed: `error`)."""

    host: str
    item: str
    moved: int  # bytes written on the host
    skipped: int  # bytes it already held
    seconds: float
    route: str = ""  # how the bytes got there ("from 10.0.0.11 over 192.168.100.12", "through this machine", ...)
    error: str | None = None
    kind = "transfer-done"

    def to_json(self) -> dict[str, Any]:
        return {
            "event": self.kind,
            "host": self.host,
            "item": self.item,
            "moved": self.moved,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
            "route": self.route,
            "error": self.error,
        }


@dataclass(frozen=True)
class MemoryEstimate(Event):
    """The per-host memory estimate of a plan (the run header): `text` is the table, `data` its JSON form."""

    text: str
    fits: bool | None  # None: no estimate (see text)
    data: dict[str, Any] = field(default_factory=dict)
    kind = "memory"

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "fits": self.fits, **self.data}


Emit = Callable[[Event], None]


def ignore(_event: Event) -> None:
    return None
