"""Download a model once, into a Hugging Face hub cache, with huggingface_hub.

`download_model(manifest, hub_dir)`:
1. checks the cache first (`check_cache`, links complete blobs): a complete model costs no request at all;
2. `offline=True` never downloads: it returns when complete and otherwise raises `ModelNotCachedError` listing the
   exact missing files;
3. removes corrupt files (wrong size or checksum) and partial files left by a killed download, checks free disk
   space, then fetches each missing file with `hf_hub_download(revision=<commit>)` (parallel, `max_workers`),
   writes `refs/<revision>` and checks again.

Resuming, as huggingface_hub 2.4.0 does it: a connection that drops mid-file is resumed within the same call with
an HTTP Range request from the last whole 10 MiB chunk received (up to 5 times); files finished before an
interruption (Ctrl-C, kill) are never fetched again; the file that was in flight restarts from zero (the library
writes each download to a process-unique temporary file and deletes it on failure; after a SIGKILL
`sweep_partial_downloads` removes the leftover). So the unit of resumption across runs is one file (shards are
usually <= 5-10 GB).

The token comes from `HF_TOKEN` in the environment (read by the library), never from an argument.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparkrun.errors import HostError
from sparkrun.models.check import CacheCheck, check_cache
from sparkrun.models.errors import ModelNotCachedError
from sparkrun.models.hub import gated_error, hf, hub_endpoint, hub_errors, token_present
from sparkrun.models.layout import RepoCache, write_ref
from sparkrun.models.manifest import ModelManifest
from sparkrun.models.metacache import is_commit

# progress(file, bytes done for that file, its size)
ProgressCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DownloadReport:
    repo_id: str
    commit: str
    hub_dir: Path
    fetched: tuple[str, ...]  # files downloaded by this call
    reused: tuple[str, ...]  # files that were already complete
    bytes_fetched: int
    seconds: float
    check: CacheCheck  # the final state


class _Cancelled(Exception):
    """Raised inside the library's download loop to stop a worker (after Ctrl-C or another file's failure)."""


def _progress_class(path: str, size: int, progress: ProgressCallback | None, cancel: threading.Event) -> type[Any]:
    """A tqdm stand-in the library accepts as `tqdm_class` (plain HTTP and Xet downloads alike): forwards byte counts
    to `progress`, prints nothing, and stops the download once `cancel` is set (the library then deletes its
    temporary file). `update_transfer` makes the Xet reporter use this one object for both of its bars."""

    class _Progress:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.n = int(kwargs.get("initial") or 0)
            self.total = kwargs.get("total")

        def __enter__(self) -> _Progress:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def update(self, n: float | None = 1) -> None:
            if cancel.is_set():
                raise _Cancelled(path)
            self.n += int(n or 0)
            if progress is not None:
                progress(path, self.n, size)

        def update_transfer(self, n: float | None = 1) -> None:
            if cancel.is_set():
                raise _Cancelled(path)

        def set_postfix_str(self, *args: Any, **kwargs: Any) -> None:
            pass

        set_transfer_postfix_str = set_description = set_description_str = set_postfix_str

        def refresh(self, *args: Any, **kwargs: Any) -> None:
            pass

        def close(self) -> None:
            pass

    return _Progress


def sweep_partial_downloads(hub_dir: Path, manifest: ModelManifest) -> int:
    """Remove `blobs/<etag>.*.incomplete` files of this manifest that no live download holds the lock of (a killed
    process leaves them, the library never reuses them). Returns the bytes freed."""
    from filelock import FileLock, Timeout  # deferred: comes with huggingface_hub, needed only for a clean-up

    cache = RepoCache(Path(hub_dir).expanduser(), manifest.repo_id)
    freed = 0
    for item in manifest.files:
        leftovers = list(cache.blob(item.blob).parent.glob(f"{item.blob}.*.incomplete"))
        if not leftovers:
            continue
        lock_path = cache.lock(item.blob)
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(str(lock_path), timeout=0):
                for leftover in leftovers:
                    freed += leftover.stat().st_size
                    leftover.unlink(missing_ok=True)
        except Timeout:
            continue  # another process is downloading this file right now
    return freed


def _remove_corrupt(cache: RepoCache, manifest: ModelManifest, paths: tuple[str, ...]) -> None:
    for path in paths:
        item = manifest.file(path)
        assert item is not None
        cache.snapshot_file(manifest.commit, path).unlink(missing_ok=True)
        cache.blob(item.blob).unlink(missing_ok=True)


def _require_space(hub_dir: Path, needed: int) -> None:
    probe = hub_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise HostError(
            "localhost",
            "model download",
            f"not enough disk space in {hub_dir}: {needed / 1e9:.1f} GB needed, {free / 1e9:.1f} GB free",
            hint="free space or point the Hugging Face cache elsewhere (HF_HOME / the cluster's hf_cache)",
        )


def _fetch_one(
    manifest: ModelManifest, hub_dir: Path, path: str, progress: ProgressCallback | None, cancel: threading.Event
) -> None:
    item = manifest.file(path)
    assert item is not None
    if cancel.is_set():
        return
    with hub_errors(manifest.repo_id, f"download {path}", manifest.commit):
        hf().hf_hub_download(
            manifest.repo_id,
            path,
            revision=manifest.commit,
            cache_dir=str(hub_dir),
            endpoint=hub_endpoint(),
            tqdm_class=_progress_class(path, item.size, progress, cancel),
        )


def _fetch_all(
    manifest: ModelManifest, hub_dir: Path, todo: tuple[str, ...], workers: int, progress: ProgressCallback | None
) -> None:
    """Fetch `todo` in parallel. On the first failure, or Ctrl-C, the other downloads stop at their next chunk; the
    first real error (not a cancellation it caused) is raised."""
    cancel = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo))), thread_name_prefix="sparkrun-download")
    first: BaseException | None = None
    try:
        for future in as_completed([pool.submit(_fetch_one, manifest, hub_dir, p, progress, cancel) for p in todo]):
            error = future.exception()
            if error is not None and not isinstance(error, _Cancelled) and first is None:
                first = error
                cancel.set()
    except BaseException:
        cancel.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if first is not None:
        raise first


def download_model(
    manifest: ModelManifest,
    hub_dir: Path,
    *,
    offline: bool = False,
    max_workers: int = 8,
    verify: bool = False,
    progress: ProgressCallback | None = None,
) -> DownloadReport:
    """Make `hub_dir` hold every file of `manifest` (see the module docstring)."""
    started = time.monotonic()
    hub_dir = Path(hub_dir).expanduser()
    before = check_cache(hub_dir, manifest, verify=verify, fix_links=True)
    if not before.to_fetch:
        return DownloadReport(manifest.repo_id, manifest.commit, hub_dir, (), before.present, 0, 0.0, before)
    if offline:
        raise ModelNotCachedError(
            f"{manifest.repo_id}@{manifest.commit[:12]}: {len(before.to_fetch)} of {len(manifest.files)} files are "
            f"not in {hub_dir} (offline)",
            missing=before.to_fetch,
            hint="run without --offline once, or copy the model from a host that has it",
        )
    if manifest.gated and not token_present():
        raise gated_error(manifest.repo_id)
    cache = RepoCache(hub_dir, manifest.repo_id)
    _remove_corrupt(cache, manifest, before.corrupt)
    sweep_partial_downloads(hub_dir, manifest)
    _require_space(hub_dir, before.bytes_to_fetch)
    todo = before.to_fetch
    _fetch_all(manifest, hub_dir, todo, max_workers, progress)
    if not is_commit(manifest.revision):
        write_ref(cache, manifest.revision, manifest.commit)
    after = check_cache(hub_dir, manifest, verify=verify)
    if after.to_fetch:
        raise HostError(
            "localhost", "model download", f"{manifest.repo_id}: still incomplete after download: {after.to_fetch}"
        )
    return DownloadReport(
        manifest.repo_id,
        manifest.commit,
        hub_dir,
        todo,
        before.present + before.unlinked,
        before.bytes_to_fetch,
        time.monotonic() - started,
        after,
    )
