"""Model metadata kept on the control machine, so planning and `--dry-run` work offline once a model was seen.

    <sparkrun cache>/models/models--org--name/refs/<revision>          commit the revision pointed at when fetched
    <sparkrun cache>/models/models--org--name/<commit>/snapshot.json   file list (RepoSnapshot)
    <sparkrun cache>/models/models--org--name/<commit>/<name>.json     other facts (config.json, index, headers)

A commit's data never changes, so it is reused forever; a branch is looked up again when online.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sparkrun.config import cache_dir
from sparkrun.models.ref import repo_folder_name
from sparkrun.models.repoinfo import RepoSnapshot

_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def is_commit(revision: str) -> bool:
    return bool(_COMMIT.match(revision))


def metadata_root() -> Path:
    return cache_dir() / "models"


def repo_dir(repo_id: str) -> Path:
    return metadata_root() / repo_folder_name(repo_id)


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def cached_commit(repo_id: str, revision: str) -> str | None:
    if is_commit(revision):
        return revision
    try:
        return (repo_dir(repo_id) / "refs" / revision).read_text().strip() or None
    except OSError:
        return None


def save_snapshot(snapshot: RepoSnapshot, revision: str) -> None:
    base = repo_dir(snapshot.repo_id)
    write_json_atomic(base / snapshot.commit / "snapshot.json", snapshot.to_json())
    if revision != snapshot.commit:
        ref = base / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(snapshot.commit)


def load_snapshot(repo_id: str, revision: str) -> RepoSnapshot | None:
    commit = cached_commit(repo_id, revision)
    if commit is None:
        return None
    data = read_json(repo_dir(repo_id) / commit / "snapshot.json")
    try:
        return RepoSnapshot.from_json(data) if isinstance(data, dict) else None
    except (KeyError, TypeError, ValueError):
        return None


def _fact_path(repo_id: str, commit: str, name: str) -> Path:
    return repo_dir(repo_id) / commit / (quote(name, safe="") + ".json")


def save_fact(repo_id: str, commit: str, name: str, data: Any) -> None:
    """Keep a fact about a commit (`name` may be a repo path such as `Q8_0/x.gguf`)."""
    write_json_atomic(_fact_path(repo_id, commit, name), data)


def load_fact(repo_id: str, commit: str, name: str) -> Any | None:
    return read_json(_fact_path(repo_id, commit, name))
