"""Is a model complete in a Hugging Face cache? The same check two ways:

- `check_cache(hub_dir, manifest)` here, on this machine's filesystem;
- `shell/model_check.sh` on each host: `check_script_params(manifest, hub_dir)` gives its preamble values (render
  with `sparkrun.shell.render_script("model_check", params)`), `parse_check_events(manifest, events)` reads
  its `@sr model-file/model-ref` events back into the same `CacheCheck`.

A file is `present` (complete by size, and by checksum when `verify`), `unlinked` (the blob is complete but the
snapshot symlink is missing: fixable without a transfer, `fix_links=True` fixes it), `missing`, `partial` (smaller),
`oversize` or `checksum` (content differs). `corrupt` = partial + oversize + checksum: they must be fetched again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sparkrun.models.layout import RepoCache, link_snapshot_file, read_ref, write_ref
from sparkrun.models.manifest import ManifestFile, ModelManifest
from sparkrun.models.metacache import is_commit


class FileState(StrEnum):
    PRESENT = "present"
    UNLINKED = "unlinked"
    MISSING = "missing"
    PARTIAL = "partial"
    OVERSIZE = "oversize"
    CHECKSUM = "checksum"


CORRUPT_STATES = frozenset({FileState.PARTIAL, FileState.OVERSIZE, FileState.CHECKSUM})


@dataclass(frozen=True)
class FileCheck:
    path: str
    state: FileState
    found_size: int
    size: int


@dataclass(frozen=True)
class CacheCheck:
    repo_id: str
    commit: str
    files: tuple[FileCheck, ...]
    ref_state: str | None = None  # ok / fixed / missing / stale, None when the revision is a commit

    def _paths(self, *states: FileState) -> tuple[str, ...]:
        return tuple(f.path for f in self.files if f.state in states)

    @property
    def present(self) -> tuple[str, ...]:
        return self._paths(FileState.PRESENT)

    @property
    def unlinked(self) -> tuple[str, ...]:
        return self._paths(FileState.UNLINKED)

    @property
    def missing(self) -> tuple[str, ...]:
        return self._paths(FileState.MISSING)

    @property
    def corrupt(self) -> tuple[str, ...]:
        return self._paths(*CORRUPT_STATES)

    @property
    def to_fetch(self) -> tuple[str, ...]:
        """Files that need content (missing or corrupt)."""
        return self._paths(FileState.MISSING, *CORRUPT_STATES)

    @property
    def bytes_to_fetch(self) -> int:
        return sum(f.size for f in self.files if f.state is FileState.MISSING or f.state in CORRUPT_STATES)

    @property
    def complete(self) -> bool:
        return all(f.state is FileState.PRESENT for f in self.files) and self.ref_state in (None, "ok", "fixed")


# --- local check ---------------------------------------------------------------------------------------------------


def _git_blob_id(path: Path, size: int) -> str:
    digest = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def content_matches(path: Path, item: ManifestFile) -> bool:
    if item.sha256:
        return _sha256(path) == item.sha256
    if item.blob_id:
        return _git_blob_id(path, item.size) == item.blob_id
    return True


def _check_file(cache: RepoCache, commit: str, item: ManifestFile, verify: bool, fix_links: bool) -> FileCheck:
    pointer, blob = cache.snapshot_file(commit, item.path), cache.blob(item.blob)
    if pointer.exists():
        target, state = pointer, FileState.PRESENT
    elif blob.exists():
        target, state = blob, FileState.UNLINKED
    else:
        return FileCheck(item.path, FileState.MISSING, 0, item.size)
    size = target.stat().st_size
    if size < item.size:
        state = FileState.PARTIAL
    elif size > item.size:
        state = FileState.OVERSIZE
    elif verify and not content_matches(target, item):
        state = FileState.CHECKSUM
    elif state is FileState.UNLINKED and fix_links:
        link_snapshot_file(cache, commit, item.path, item.blob)
        state = FileState.PRESENT
    return FileCheck(item.path, state, size, item.size)


def _ref_state(cache: RepoCache, manifest: ModelManifest, fix: bool) -> str | None:
    if is_commit(manifest.revision):
        return None
    if read_ref(cache, manifest.revision) == manifest.commit:
        return "ok"
    if fix:
        write_ref(cache, manifest.revision, manifest.commit)
        return "fixed"
    return "missing" if read_ref(cache, manifest.revision) is None else "stale"


def check_cache(hub_dir: Path, manifest: ModelManifest, *, verify: bool = False, fix_links: bool = False) -> CacheCheck:
    """Check (and with `fix_links`, link) every manifest file in the hub cache at `hub_dir`."""
    cache = RepoCache(Path(hub_dir).expanduser(), manifest.repo_id)
    files = tuple(_check_file(cache, manifest.commit, f, verify, fix_links) for f in manifest.files)
    return CacheCheck(manifest.repo_id, manifest.commit, files, _ref_state(cache, manifest, fix_links))


# --- the same check on a host (model_check.sh) ----------------------------------------------------------------------


def check_script_params(
    manifest: ModelManifest, hub_dir: str, *, verify: bool = False, fix_links: bool = False
) -> dict[str, str | bool | list[str]]:
    """Preamble values for `render_script("model_check", ...)`. `hub_dir` is the host's path (`~` allowed)."""
    return {
        "HUB_DIR": hub_dir,
        "REPO_FOLDER": manifest.folder,
        "COMMIT": manifest.commit,
        "REF_NAME": "" if is_commit(manifest.revision) else manifest.revision,
        "VERIFY": verify,
        "FIX_LINKS": fix_links,
        "FILE_PATHS": [f.path for f in manifest.files],
        "FILE_SIZES": [str(f.size) for f in manifest.files],
        "FILE_BLOBS": [f.blob for f in manifest.files],
        "FILE_SHA256": [f.sha256 or "" for f in manifest.files],
        "FILE_BLOB_IDS": [f.blob_id or "" for f in manifest.files],
    }


def parse_check_events(manifest: ModelManifest, events: Iterable[tuple[str, str]]) -> CacheCheck:
    """`(key, value)` events of model_check.sh (protocol.parse_output(...).events) -> CacheCheck. A manifest file
    the script did not report (truncated output) counts as missing."""
    found: dict[str, tuple[FileState, int]] = {}
    ref_state = None
    for key, value in events:
        if key == "model-file":
            state, size, path = value.split(" ", 2)
            found[path] = (FileState(state), int(size))
        elif key == "model-ref":
            ref_state = value.split(" ", 1)[0]
    sizes: Mapping[str, int] = {f.path: f.size for f in manifest.files}
    files = tuple(
        FileCheck(p, *found.get(p, (FileState.MISSING, 0)), sizes[p]) for p in (f.path for f in manifest.files)
    )
    return CacheCheck(manifest.repo_id, manifest.commit, files, ref_state)
