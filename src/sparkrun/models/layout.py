"""The Hugging Face hub cache layout, as huggingface_hub (and llama.cpp) write it:

    <hub_dir>/models--org--name/blobs/<etag>                      file content (etag: LFS sha256, else git blob id)
    <hub_dir>/models--org--name/snapshots/<commit>/<path>         relative symlink -> ../../blobs/<etag>
    <hub_dir>/models--org--name/refs/<branch or tag>              the commit, no newline

`hub_dir` is `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`. Containers mount the host's
`HF_HOME` at /cache/huggingface (so /cache/huggingface/hub inside).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from sparkrun.models.ref import repo_folder_name

CONTAINER_HF_HOME = "/cache/huggingface"


def default_hub_dir() -> Path:
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("HF_HOME")
    return (Path(home).expanduser() if home else Path.home() / ".cache" / "huggingface") / "hub"


def hub_dir_for(hf_home: str | Path) -> Path:
    """The hub cache inside an HF_HOME (what a cluster's `hf_cache` setting names)."""
    return Path(hf_home) / "hub"


@dataclass(frozen=True)
class RepoCache:
    """Paths of one repo inside a hub cache."""

    hub_dir: Path
    repo_id: str

    @property
    def root(self) -> Path:
        return self.hub_dir / repo_folder_name(self.repo_id)

    def blob(self, etag: str) -> Path:
        return self.root / "blobs" / etag

    def snapshot_dir(self, commit: str) -> Path:
        return self.root / "snapshots" / commit

    def snapshot_file(self, commit: str, relpath: str) -> Path:
        return self.snapshot_dir(commit).joinpath(*relpath.split("/"))

    def ref(self, name: str) -> Path:
        return self.root / "refs" / name

    def lock(self, etag: str) -> Path:
        """The lock huggingface_hub holds while it downloads a blob."""
        return self.hub_dir / ".locks" / repo_folder_name(self.repo_id) / f"{etag}.lock"


def link_target(pointer: Path, blob: Path) -> str:
    """The relative symlink text from a snapshot entry to its blob (`../../blobs/<etag>`, deeper for subdirs)."""
    return os.path.relpath(blob, pointer.parent)


def link_snapshot_file(cache: RepoCache, commit: str, relpath: str, etag: str) -> Path:
    """Create (or replace) the snapshot symlink of one file; returns its path."""
    pointer = cache.snapshot_file(commit, relpath)
    pointer.parent.mkdir(parents=True, exist_ok=True)
    tmp = pointer.with_name(f".{pointer.name}.{uuid.uuid4().hex[:8]}.tmp")
    os.symlink(link_target(pointer, cache.blob(etag)), tmp)
    os.replace(tmp, pointer)
    return pointer


def write_ref(cache: RepoCache, name: str, commit: str) -> None:
    """refs/<name> = commit (atomically; skipped when already right)."""
    path = cache.ref(name)
    if path.is_file() and path.read_text().strip() == commit:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name.replace('/', '_')}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(commit)
    os.replace(tmp, path)


def read_ref(cache: RepoCache, name: str) -> str | None:
    try:
        return cache.ref(name).read_text().strip() or None
    except OSError:
        return None
