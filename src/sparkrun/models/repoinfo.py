"""What the Hub says about one commit of a repo: its files with sizes, blob ids and LFS sha256 (plain data)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RepoEntry:
    path: str
    size: int
    blob_id: str | None  # git blob id (for LFS files: of the pointer)
    sha256: str | None = None  # LFS files: the content's sha256 (also their blob name in the cache)

    @property
    def etag(self) -> str | None:
        """The file's blob name in a hub cache: the LFS sha256, else the git blob id."""
        return self.sha256 or self.blob_id


@dataclass(frozen=True)
class RepoSnapshot:
    repo_id: str
    commit: str
    files: tuple[RepoEntry, ...]
    gated: bool = False

    def paths(self) -> list[str]:
        return [f.path for f in self.files]

    def entry(self, path: str) -> RepoEntry | None:
        return next((f for f in self.files if f.path == path), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "repo_id": self.repo_id,
            "commit": self.commit,
            "gated": self.gated,
            "files": [{"path": f.path, "size": f.size, "blob_id": f.blob_id, "sha256": f.sha256} for f in self.files],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RepoSnapshot:
        files = tuple(RepoEntry(f["path"], int(f["size"]), f.get("blob_id"), f.get("sha256")) for f in data["files"])
        return cls(str(data["repo_id"]), str(data["commit"]), files, bool(data.get("gated", False)))
