"""What a recipe needs from the Hub, frozen: `ModelManifest` = repo, commit, the files the runtime reads (size,
blob name, sha256 when the Hub gives it), total bytes.

- `build_manifest(request, snapshot, index_files)` is pure: cached or fetched repo metadata in, manifest out.
- `resolve_manifest(request, offline=...)` gets the metadata (cache first for a commit; online: one
  `model_info(files_metadata=True)` call, plus the safetensors index when there is one) and keeps it in the
  metadata cache (`metacache`), so `cached_manifest(request)` can show it later without any network.
- `model_request(recipe_model, runtime, ...)` / `request_from_recipe(recipe, runtime)` build the request from recipe
  values (`model`, `model_revision`, `distribution_config.models.entries[]` allow/ignore patterns and revision).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sparkrun.models import metacache
from sparkrun.models.errors import GatedModelError, ModelError, ModelNotCachedError
from sparkrun.models.layout import CONTAINER_HF_HOME
from sparkrun.models.ref import GGUF_RUNTIMES, ModelRef, parse_model_ref, repo_folder_name
from sparkrun.models.repoinfo import RepoSnapshot
from sparkrun.models.selection import apply_patterns, select_checkpoint_files, select_gguf_files

DEFAULT_REVISION = "main"
INDEX_SUFFIX = ".safetensors.index.json"


@dataclass(frozen=True)
class ModelRequest:
    """Everything that decides a manifest."""

    model: str  # `org/name` or `org/name:QUANT`
    runtime: str
    revision: str | None = None
    allow_patterns: tuple[str, ...] | None = None
    ignore_patterns: tuple[str, ...] | None = None
    include_mmproj: bool = True
    load_format: str | None = None

    @property
    def ref(self) -> ModelRef:
        ref = parse_model_ref(self.model)
        if ref is None:
            raise ModelError(f"model {self.model!r} is a path on the hosts: there is nothing to download")
        return ref

    @property
    def wants_gguf(self) -> bool:
        return self.ref.quant is not None or self.runtime in GGUF_RUNTIMES


@dataclass(frozen=True)
class ManifestFile:
    path: str
    size: int
    blob: str  # name under blobs/ in a hub cache (LFS sha256, else git blob id)
    sha256: str | None = None
    blob_id: str | None = None  # git blob id (lets a non-LFS file be verified)

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "blob": self.blob, "sha256": self.sha256, "blob_id": self.blob_id}


@dataclass(frozen=True)
class ModelManifest:
    repo_id: str
    revision: str  # what the recipe asked for ("main" when it did not say)
    commit: str
    runtime: str
    files: tuple[ManifestFile, ...]
    quant: str | None = None
    primary: str | None = None  # GGUF: the file llama-server loads (first part of a split)
    gated: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def folder(self) -> str:
        return repo_folder_name(self.repo_id)

    def file(self, path: str) -> ManifestFile | None:
        return next((f for f in self.files if f.path == path), None)

    def container_path(self, hf_home: str = CONTAINER_HF_HOME) -> str:
        """Where an engine finds the model inside a container that mounts the host's HF_HOME at `hf_home`: the
        snapshot directory, or for GGUF the primary file (for `llama-server -m`)."""
        snapshot = f"{hf_home.rstrip('/')}/hub/{self.folder}/snapshots/{self.commit}"
        return f"{snapshot}/{self.primary}" if self.primary else snapshot

    def to_json(self) -> dict[str, Any]:
        return {
            "repo_id": self.repo_id,
            "revision": self.revision,
            "commit": self.commit,
            "runtime": self.runtime,
            "quant": self.quant,
            "primary": self.primary,
            "gated": self.gated,
            "total_bytes": self.total_bytes,
            "files": [f.to_json() for f in self.files],
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelManifest:
        files = tuple(
            ManifestFile(f["path"], int(f["size"]), f["blob"], f.get("sha256"), f.get("blob_id")) for f in data["files"]
        )
        return cls(
            data["repo_id"],
            data["revision"],
            data["commit"],
            data["runtime"],
            files,
            data.get("quant"),
            data.get("primary"),
            bool(data.get("gated")),
            tuple(data.get("notes") or ()),
        )


def _manifest_file(snapshot: RepoSnapshot, path: str) -> ManifestFile:
    entry = snapshot.entry(path)
    assert entry is not None
    etag = entry.etag
    if etag is None:
        raise ModelError(f"{snapshot.repo_id}: the Hub gave no blob id for {path}", hint="retry; report if it persists")
    return ManifestFile(path, entry.size, etag, entry.sha256, entry.blob_id)


def index_paths(snapshot: RepoSnapshot) -> list[str]:
    return [p for p in snapshot.paths() if "/" not in p and p.endswith(INDEX_SUFFIX)]


def build_manifest(
    request: ModelRequest, snapshot: RepoSnapshot, index_files: Sequence[str] | None = None
) -> ModelManifest:
    """The manifest for `request` from repo metadata (pure). `index_files`: shards listed by the safetensors index."""
    ref = request.ref
    paths = snapshot.paths()
    primary = None
    notes: list[str] = []
    try:
        if request.wants_gguf:
            pick = select_gguf_files(paths, ref.quant, include_mmproj=request.include_mmproj)
            selected = [*pick.parts, *([pick.mmproj] if pick.mmproj else [])]
            primary = pick.primary
        else:
            listed = frozenset(index_files) if index_files is not None else None
            selected = select_checkpoint_files(paths, index_files=listed, load_format=request.load_format)
    except ModelError as exc:
        raise ModelError(f"{ref}: {exc.message} (runtime {request.runtime})", hint=exc.hint) from exc
    chosen = apply_patterns(paths, selected, request.allow_patterns, request.ignore_patterns)
    if not chosen:
        raise ModelError(f"{ref}: the recipe's allow/ignore patterns leave no file to download")
    if primary is not None and primary not in chosen:
        notes.append(f"the recipe's patterns leave out {primary}")
    return ModelManifest(
        repo_id=ref.repo_id,
        revision=request.revision or DEFAULT_REVISION,
        commit=snapshot.commit,
        runtime=request.runtime,
        files=tuple(_manifest_file(snapshot, p) for p in chosen),
        quant=ref.quant,
        primary=primary,
        gated=snapshot.gated,
        notes=tuple(notes),
    )


def _snapshot(request: ModelRequest, offline: bool) -> RepoSnapshot:
    ref = request.ref
    revision = request.revision or DEFAULT_REVISION
    cached = metacache.load_snapshot(ref.repo_id, revision)
    if cached is not None and (offline or metacache.is_commit(revision)):
        return cached
    if offline:
        raise ModelNotCachedError(
            f"{ref}: no cached metadata for revision {revision!r} (offline)",
            hint="run once without --offline (or `sparkrun` with network) so the file list is cached",
        )
    from sparkrun.models.hub import fetch_snapshot  # deferred: imports huggingface_hub

    snapshot = fetch_snapshot(ref.repo_id, revision)
    metacache.save_snapshot(snapshot, revision)
    return snapshot


def _index_files(snapshot: RepoSnapshot, offline: bool) -> list[str] | None:
    indexes = index_paths(snapshot)
    if not indexes:
        return None
    cached = metacache.load_fact(snapshot.repo_id, snapshot.commit, "safetensors-index")
    if isinstance(cached, list):
        return [str(p) for p in cached]
    if offline:
        return None
    from sparkrun.models.hub import fetch_small_file  # deferred: imports huggingface_hub

    listed: set[str] = set()
    scratch = str(metacache.metadata_root() / "hub")
    for name in indexes:
        try:
            data = json.loads(fetch_small_file(snapshot.repo_id, snapshot.commit, name, scratch))
        except GatedModelError:
            return None  # the file list is public, the index is not: the download will say what to do
        listed |= set((data.get("weight_map") or {}).values())
    metacache.save_fact(snapshot.repo_id, snapshot.commit, "safetensors-index", sorted(listed))
    return sorted(listed)


def resolve_manifest(request: ModelRequest, *, offline: bool = False) -> ModelManifest:
    """The manifest, from the metadata cache when it can be trusted (a commit, or `offline`), else from the Hub."""
    snapshot = _snapshot(request, offline)
    index = None if request.wants_gguf else _index_files(snapshot, offline)
    return build_manifest(request, snapshot, index)


def cached_manifest(request: ModelRequest) -> ModelManifest | None:
    """The manifest from cached metadata only (never any network: for `--dry-run`); None when never fetched."""
    try:
        return resolve_manifest(request, offline=True)
    except ModelNotCachedError:
        return None


def _entry_for(entries: Any, model: str) -> Mapping[str, Any]:
    if not isinstance(entries, list):
        return {}
    for entry in entries:
        if isinstance(entry, Mapping) and entry.get("name") in (model, "{model}"):
            return entry
    return {}


def _patterns(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    return (value,) if isinstance(value, str) else tuple(str(v) for v in value)


def model_request(
    model: str,
    runtime: str,
    *,
    revision: str | None = None,
    distribution_config: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> ModelRequest:
    """A request from recipe values. The `distribution_config.models.entries[]` entry named after the model (or
    `{model}`) supplies allow/ignore patterns and may pin the revision; `load_format` comes from the settings."""
    models = (distribution_config or {}).get("models") or {}
    entry = _entry_for(models.get("entries") if isinstance(models, Mapping) else None, model)
    load_format = (settings or {}).get("load_format")
    return ModelRequest(
        model=model,
        runtime=runtime,
        revision=revision or entry.get("revision"),
        allow_patterns=_patterns(entry.get("allow_patterns")),
        ignore_patterns=_patterns(entry.get("ignore_patterns")),
        load_format=str(load_format) if load_format else None,
    )


def request_from_recipe(recipe: Any, runtime: str, settings: Mapping[str, Any] | None = None) -> ModelRequest | None:
    """The request for a loaded `sparkrun.recipes.model.Recipe`; None when its model is a path on the hosts."""
    if parse_model_ref(recipe.model) is None:
        return None
    return model_request(
        recipe.model,
        runtime,
        revision=recipe.model_revision,
        distribution_config=recipe.distribution_config,
        settings=settings,
    )
