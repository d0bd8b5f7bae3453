"""Repositories the Hub stand-in serves: files on disk plus the ids the Hub computes for them.

A file is LFS (like on the Hub) when it is a weight format or larger than 10 MB; its ETag is then the sha256 of the
content, else the git blob id. Each `add_snapshot` makes a new commit and moves the branch to it; older commits stay
resolvable by sha.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

LFS_SUFFIXES = (".safetensors", ".gguf", ".bin", ".pth", ".pt", ".onnx", ".msgpack", ".h5")
LFS_MIN_SIZE = 10 * 1000 * 1000


def _hash_file(path: Path, algo: str, prefix: bytes = b"") -> str:
    digest = hashlib.new(algo)
    digest.update(prefix)
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class StubFile:
    path: str  # path inside the repo
    source: Path  # the content on disk
    size: int
    sha256: str
    blob_id: str  # git blob id (for LFS files: of the pointer file)
    lfs: bool
    pointer_size: int = 0

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.blob_id


def stub_file(path: str, source: Path) -> StubFile:
    size = source.stat().st_size
    sha256 = _hash_file(source, "sha256")
    lfs = path.endswith(LFS_SUFFIXES) or size > LFS_MIN_SIZE
    if not lfs:
        return StubFile(path, source, size, sha256, git_blob_id(source.read_bytes()), lfs=False)
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    return StubFile(path, source, size, sha256, git_blob_id(pointer), lfs=True, pointer_size=len(pointer))


@dataclass(frozen=True)
class Snapshot:
    commit: str
    files: Mapping[str, StubFile]


@dataclass
class StubRepo:
    repo_id: str
    gated: bool = False
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # branch -> commit

    def add_snapshot(self, files: Iterable[StubFile], branch: str = "main") -> Snapshot:
        table = {f.path: f for f in sorted(files, key=lambda f: f.path)}
        parent = self.refs.get(branch, "")
        material = "\n".join([self.repo_id, parent, *(f"{f.path} {f.etag}" for f in table.values())])
        commit = hashlib.sha1(material.encode(), usedforsecurity=False).hexdigest()
        snapshot = Snapshot(commit, table)
        self.snapshots[commit] = snapshot
        self.refs[branch] = commit
        return snapshot

    def resolve(self, revision: str) -> Snapshot | None:
        commit = self.refs.get(revision, revision)
        return self.snapshots.get(commit)


class RepoSet:
    """Thread-safe table of repos, plus an index from sha256 to file (the CDN serves LFS content by hash)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._repos: dict[str, StubRepo] = {}
        self._by_sha: dict[tuple[str, str], StubFile] = {}

    def add(self, repo_id: str, files: Iterable[StubFile], *, gated: bool = False, branch: str = "main") -> Snapshot:
        with self._lock:
            repo = self._repos.setdefault(repo_id, StubRepo(repo_id, gated=gated))
            repo.gated = repo.gated or gated
            snapshot = repo.add_snapshot(files, branch)
            for item in snapshot.files.values():
                if item.lfs:
                    self._by_sha[(repo_id, item.sha256)] = item
            return snapshot

    def get(self, repo_id: str) -> StubRepo | None:
        with self._lock:
            return self._repos.get(repo_id)

    def by_sha256(self, repo_id: str, sha256: str) -> StubFile | None:
        with self._lock:
            return self._by_sha.get((repo_id, sha256))

    def ids(self) -> list[str]:
        with self._lock:
            return sorted(self._repos)
