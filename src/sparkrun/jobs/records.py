"""Local records of jobs: metadata of launched jobs, and locks for operations in progress.

`<cache>/jobs/<job>.json` holds what a launch knew (hosts, cluster, SSH settings without secrets, endpoint, timings),
so `sparkrun logs JOB` and `stop JOB` find the job's hosts without `-H`. `<cache>/pending/<job>.json` + `.lock` mark
an operation in progress: the lock is a real `flock`, so two concurrent runs of the same job cannot both proceed, and
`status` shows a launch as "in progress" (or stale, when its process is gone).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparkrun.config import cache_dir, write_atomic
from sparkrun.errors import InputError

STALE_PENDING_SECONDS = 12 * 3600


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON so that a reader never sees a half-written file (and it is on disk once this returns)."""
    write_atomic(path, lambda fh: json.dump(dict(data), fh, indent=2, sort_keys=True, default=str))


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class PendingOp:
    job: str
    operation: str
    pid: int
    started_at: float
    data: Mapping[str, Any]
    stale: bool


class JobBusy(InputError):
    """Another sparkrun process holds the job's lock."""


class JobStore:
    """`<cache>/jobs/<job>.json` (metadata) and `<cache>/pending/<job>.{json,lock}` (operations in progress)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or cache_dir()

    def _job_path(self, job: str) -> Path:
        return self.root / "jobs" / f"{job}.json"

    def _pending_path(self, job: str) -> Path:
        return self.root / "pending" / f"{job}.json"

    def save(self, job: str, record: Mapping[str, Any]) -> None:
        write_json_atomic(self._job_path(job), {**record, "job": job})

    def load(self, job: str) -> dict[str, Any] | None:
        return read_json(self._job_path(job))

    def all(self) -> list[dict[str, Any]]:
        d = self.root / "jobs"
        if not d.is_dir():
            return []
        return [r for p in sorted(d.glob("*.json")) if (r := read_json(p)) is not None]

    def forget(self, job: str) -> None:
        self._job_path(job).unlink(missing_ok=True)

    @contextmanager
    def pending(self, job: str, operation: str, **data: Any) -> Iterator[None]:
        """Hold the job's lock for an operation (shown by `status`). A second holder is refused at once, naming the
        process that has it; the lock goes when the block ends or the process dies, however it dies."""
        path = self._pending_path(job)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(path.with_suffix(".lock"), "a+")  # noqa: SIM115 - held for the whole block
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                other = read_json(path) or {}
                raise JobBusy(
                    f"job {job} is busy: {other.get('operation', 'an operation')} by process {other.get('pid', '?')}",
                    hint="wait for it to finish (`sparkrun status` shows it), or stop it first",
                ) from None
            record = {"job": job, "operation": operation, "pid": os.getpid(), "started_at": time.time(), **data}
            write_json_atomic(path, record)
            try:
                yield
            finally:
                path.unlink(missing_ok=True)
        finally:
            lock.close()

    def _held(self, job: str) -> bool:
        lock_path = self._pending_path(job).with_suffix(".lock")
        try:
            with open(lock_path, "a+") as fh:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        return False

    def pending_ops(self) -> list[PendingOp]:
        d = self.root / "pending"
        if not d.is_dir():
            return []
        ops = []
        for p in sorted(d.glob("*.json")):
            r = read_json(p)
            if r is None:
                continue
            job = str(r.get("job", p.stem))
            started = float(r.get("started_at", 0))
            stale = not self._held(job) or time.time() - started > STALE_PENDING_SECONDS
            extra = {k: v for k, v in r.items() if k not in {"job", "operation", "pid", "started_at"}}
            ops.append(PendingOp(job, str(r.get("operation", "?")), int(r.get("pid", 0)), started, extra, stale))
        return ops
