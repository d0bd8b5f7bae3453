"""Job identity, container names and labels, and the local records of jobs (metadata and pending operations).

A job id is derived from the recipe and the effective settings, so the same launch gets the same id on any control
machine. Containers carry labels (`sparkrun.job`, `sparkrun.rank`, ...) that hold everything `status`, `logs` and `stop`
need, so those commands work from a second machine or an empty config. The records under the cache dir only add
history (when it became ready, timings) and show launches in progress.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparkrun.config import cache_dir

LABEL = "sparkrun"
STALE_PENDING_SECONDS = 12 * 3600


def job_id(identity: Mapping[str, Any]) -> str:
    """12 hex digits of a stable hash of what defines the job."""
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def container_name(job: str, role: str, rank: int) -> str:
    suffix = f"worker{rank}" if role == "worker" else role
    return f"sparkrun_{job}_{suffix}"


def labels(job: str, rank: int, role: str, meta: Mapping[str, Any]) -> dict[str, str]:
    out = {f"{LABEL}.job": job, f"{LABEL}.rank": str(rank), f"{LABEL}.role": role}
    for key, value in meta.items():
        if value is not None and value != "":
            out[f"{LABEL}.{key}"] = str(value)
    return out


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(dict(data), fh, indent=2, sort_keys=True, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class PendingOp:
    job: str
    operation: str
    pid: int
    started_at: float
    data: Mapping[str, Any]

    @property
    def stale(self) -> bool:
        return not _pid_alive(self.pid) or time.time() - self.started_at > STALE_PENDING_SECONDS


class JobStore:
    """`<cache>/jobs/<job>.json` (metadata) and `<cache>/pending/<job>.json` (operations in progress)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or cache_dir()

    def _job_path(self, job: str) -> Path:
        return self.root / "jobs" / f"{job}.json"

    def _pending_path(self, job: str) -> Path:
        return self.root / "pending" / f"{job}.json"

    def save(self, job: str, record: Mapping[str, Any]) -> None:
        write_json_atomic(self._job_path(job), {**record, "job": job})

    def update(self, job: str, **changes: Any) -> None:
        record = self.load(job) or {}
        self.save(job, {**record, **changes})

    def load(self, job: str) -> dict[str, Any] | None:
        return _read_json(self._job_path(job))

    def all(self) -> list[dict[str, Any]]:
        d = self.root / "jobs"
        if not d.is_dir():
            return []
        return [r for p in sorted(d.glob("*.json")) if (r := _read_json(p)) is not None]

    def forget(self, job: str) -> None:
        self._job_path(job).unlink(missing_ok=True)

    @contextmanager
    def pending(self, job: str, operation: str, **data: Any) -> Iterator[None]:
        """Record an operation in progress (shown by `status`); removed when the block ends, however it ends."""
        path = self._pending_path(job)
        write_json_atomic(
            path, {"job": job, "operation": operation, "pid": os.getpid(), "started_at": time.time(), **data}
        )
        try:
            yield
        finally:
            path.unlink(missing_ok=True)

    def pending_ops(self) -> list[PendingOp]:
        d = self.root / "pending"
        if not d.is_dir():
            return []
        ops = []
        for p in sorted(d.glob("*.json")):
            r = _read_json(p)
            if r is None:
                continue
            ops.append(
                PendingOp(
                    job=str(r.get("job", p.stem)),
                    operation=str(r.get("operation", "?")),
                    pid=int(r.get("pid", 0)),
                    started_at=float(r.get("started_at", 0)),
                    data={k: v for k, v in r.items() if k not in {"job", "operation", "pid", "started_at"}},
                )
            )
        return ops
