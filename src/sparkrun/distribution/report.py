"""What a sync did, per item (the model, the image) and per host: bytes moved and skipped, the route, failures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sparkrun.core.events import Emit, TransferFinished
from sparkrun.core.plan import Plan
from sparkrun.errors import HostError, PartialFailure


@dataclass
class HostOutcome:
    host: str
    moved: int = 0  # bytes written on the host by this sync
    received: int = 0  # bytes that reached the host over its link (a hop reads every byte it forwards)
    skipped: int = 0  # bytes it already held
    route: str = ""
    seconds: float = 0.0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "moved": self.moved,
            "received": self.received,
            "skipped": self.skipped,
            "route": self.route,
            "seconds": round(self.seconds, 3),
            "error": self.error,
        }


@dataclass
class ItemReport:
    item: str  # "model org/name" / "image name:tag"
    total: int = 0  # bytes of the item (0: unknown, e.g. an image)
    hosts: dict[str, HostOutcome] = field(default_factory=dict)
    source: str = ""  # where the copies came from
    downloaded: int = 0  # bytes fetched from outside (the Hub, a registry) by this sync
    notes: list[str] = field(default_factory=list)

    def outcome(self, host: str) -> HostOutcome:
        return self.hosts.setdefault(host, HostOutcome(host))

    @property
    def failed(self) -> dict[str, str]:
        return {h: o.error for h, o in self.hosts.items() if o.error}

    @property
    def moved(self) -> int:
        return sum(o.moved for o in self.hosts.values())

    def announce(self, emit: Emit) -> None:
        for o in self.hosts.values():
            emit(TransferFinished(o.host, self.item, o.moved, o.skipped, o.seconds, o.route, o.error))

    def to_json(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "total": self.total,
            "source": self.source,
            "downloaded": self.downloaded,
            "hosts": [o.to_json() for o in self.hosts.values()],
            "notes": list(self.notes),
        }


@dataclass
class SyncReport:
    items: list[ItemReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    hf_hub_offline: bool = False  # the containers may run with HF_HUB_OFFLINE=1: the model is on every host
    plan: Plan | None = None  # a dry-run: the steps a sync would take
    hosts: int = 0  # how many hosts the sync was for

    def check(self) -> None:
        """Some hosts failed (PartialFailure, exit 6) or all of them (HostError, exit 4)."""
        failed = self.failed
        if not failed:
            return
        lines = [f"{h}: {c}" for h, c in failed.items()]
        host, cause = next(iter(failed.items()))
        hint = "fix those hosts and sync again: finished files are kept, only what is missing moves"
        if len(failed) >= self.hosts:
            raise HostError(host, "sync", cause, detail="\n".join(lines[1:]) or None, hint=hint)
        raise PartialFailure(
            f"synced {self.hosts - len(failed)} of {self.hosts} host(s); {len(failed)} failed",
            detail="\n".join(lines),
            hint=hint,
        )

    @property
    def failed(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.items:
            for host, error in item.failed.items():
                out.setdefault(host, f"{item.item}: {error}")
        return out

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "items": [i.to_json() for i in self.items],
            "failed": self.failed,
            "notes": list(self.notes),
            "hf_hub_offline": self.hf_hub_offline,
        }
        if self.plan is not None:
            data["steps"] = self.plan.to_json()["steps"]
        return data
