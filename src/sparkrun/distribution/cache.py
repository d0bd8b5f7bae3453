"""`sparkrun model-cache`: what each host's Hugging Face cache holds (repo, revision, size, last used, in use by a
running sparkrun container), and removing revisions: least recently used first, down to a size or free-space
target, never one a running job uses (`model_cache.sh` checks again on the host just before it deletes).

A revision's size is that of the distinct blobs its snapshot links to; blobs no snapshot links to and unfinished
copies are the repo's "orphans" (always pruned). Revisions of one repo that share blobs free less than their sizes
add up to; the report after deleting says what was really freed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sparkrun.core.plan import Plan, Step
from sparkrun.hosts import Host
from sparkrun.shell import ParamValue
from sparkrun.transport.base import Result

CACHE_TIMEOUT_S = 600.0


def repo_of(folder: str) -> str:
    return folder.removeprefix("models--").replace("--", "/")


def folder_of(model: str) -> str:
    return "models--" + model.split(":", 1)[0].replace("/", "--")


@dataclass(frozen=True)
class Revision:
    host: str
    folder: str
    commit: str
    bytes: int
    files: int
    last_used: float  # epoch seconds
    refs: tuple[str, ...] = ()
    jobs: tuple[str, ...] = ()  # jobs sparkrun recorded as launched on it
    in_use_by: tuple[str, ...] = ()  # running sparkrun jobs that use it

    @property
    def repo(self) -> str:
        return repo_of(self.folder)

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "repo": self.repo,
            "commit": self.commit,
            "refs": list(self.refs),
            "bytes": self.bytes,
            "files": self.files,
            "last_used": self.last_used,
            "in_use_by": list(self.in_use_by),
        }


@dataclass(frozen=True)
class HostCache:
    host: str
    hub: str = ""
    revisions: tuple[Revision, ...] = ()
    orphans: dict[str, int] = field(default_factory=dict)  # folder -> bytes
    disk_total: int | None = None
    disk_free: int | None = None
    running: tuple[tuple[str, str], ...] = ()  # (job, model)
    error: str | None = None

    @property
    def used_bytes(self) -> int:
        return sum(r.bytes for r in self.revisions) + sum(self.orphans.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "hub": self.hub,
            "bytes": self.used_bytes,
            "disk_total": self.disk_total,
            "disk_free": self.disk_free,
            "revisions": [r.to_json() for r in self.revisions],
            "orphans": [{"repo": repo_of(f), "bytes": b} for f, b in self.orphans.items()],
            "error": self.error,
        }


def in_use(folder: str, jobs: Sequence[str], running: Iterable[tuple[str, str]], recorded: set[str]) -> tuple[str, ...]:
    """Running jobs that use a revision of `folder` recorded with `jobs`: recorded on it, or running the repo without a
    record on any of its revisions (then every revision counts as in use)."""
    return tuple(job for job, model in running if folder_of(model) == folder and (job in jobs or job not in recorded))


def _revision(
    host: str, words: list[str], running: tuple[tuple[str, str], ...], recorded: dict[str, set[str]]
) -> Revision:
    folder, commit, size, files, last, refs, jobs = words[:7]
    job_list = tuple(j for j in jobs.split(",") if j != "-")
    return Revision(
        host=host,
        folder=folder,
        commit=commit,
        bytes=int(size),
        files=int(files),
        last_used=float(last),
        refs=tuple(r for r in refs.split(",") if r != "-"),
        jobs=job_list,
        in_use_by=in_use(folder, job_list, running, recorded.get(folder, set())),
    )


def parse_list(host: str, result: Result) -> HostCache:
    if not result.ok:
        return HostCache(host, error=result.failure()[1])
    out = result.output
    running = tuple((j, m) for j, _, m in (item.partition(" ") for item in out.all("running")))
    raw = [item.split(" ") for item in out.all("rev")]
    recorded: dict[str, set[str]] = {}
    for words in raw:
        recorded.setdefault(words[0], set()).update(j for j in words[6].split(",") if j != "-")
    revisions = [_revision(host, w, running, recorded) for w in raw if len(w) >= 7]
    orphans = {w[0]: int(w[1]) for w in (item.split(" ") for item in out.all("orphans")) if len(w) >= 2}
    total, _, free = (out.last("disk") or "").partition(" ")
    return HostCache(
        host,
        out.last("hub") or "",
        tuple(revisions),
        orphans,
        int(total) * 1024 if total.isdigit() else None,
        int(free) * 1024 if free.isdigit() else None,
        running,
    )


def list_plan(hosts: Sequence[Host], hub_dir: str, state_dir: str) -> Plan:
    values: dict[str, ParamValue] = {"ACTION": "list", "HUB_DIR": hub_dir, "STATE_DIR": state_dir, "TARGETS": []}
    return Plan(
        tuple(
            Step(h, "model_cache", values, f"list {h.address}'s model cache", "model-cache", timeout=CACHE_TIMEOUT_S)
            for h in hosts
        )
    )


def delete_plan(targets: dict[str, list[str]], hosts: Sequence[Host], hub_dir: str, state_dir: str) -> Plan:
    """One delete step per host that has something to delete (`targets`: host -> FOLDER/COMMIT or FOLDER/orphans)."""
    steps = []
    for host in hosts:
        items = targets.get(host.address)
        if not items:
            continue
        values: dict[str, ParamValue] = {"ACTION": "delete", "HUB_DIR": hub_dir, "STATE_DIR": state_dir}
        values["TARGETS"] = items
        summary = f"delete {len(items)} item(s) on {host.address}"
        steps.append(Step(host, "model_cache", values, summary, "model-cache", timeout=CACHE_TIMEOUT_S))
    return Plan(tuple(steps))


def _short(cache: HostCache, removed: Sequence[Revision], max_bytes: int | None, min_free: int | None) -> bool:
    """Is the target still not met once `removed` (and the orphans) are gone?"""
    freed = sum(r.bytes for r in removed)
    used = cache.used_bytes - sum(cache.orphans.values()) - freed
    free = (cache.disk_free or 0) + sum(cache.orphans.values()) + freed
    over = max_bytes is not None and used > max_bytes
    short = min_free is not None and cache.disk_free is not None and free < min_free
    return over or short


def prune_selection(cache: HostCache, *, max_bytes: int | None, min_free: int | None) -> list[Revision]:
    """Least recently used revisions not in use, until the cache is at most `max_bytes` and the disk has at least
    `min_free` free (orphans are always removed and count towards both)."""
    chosen: list[Revision] = []
    for rev in sorted((r for r in cache.revisions if not r.in_use_by), key=lambda r: (r.last_used, r.folder)):
        if not _short(cache, chosen, max_bytes, min_free):
            break
        chosen.append(rev)
    return chosen


def kept_in_use(
    cache: HostCache, chosen: Sequence[Revision], max_bytes: int | None, min_free: int | None
) -> list[Revision]:
    """Revisions in use that a prune would have removed too: the target is not met without them."""
    return [r for r in cache.revisions if r.in_use_by] if _short(cache, chosen, max_bytes, min_free) else []
