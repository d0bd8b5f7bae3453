"""What to put where: a `SyncSpec` (hosts, their Hugging Face cache, the model and image a job needs, where a download
happens), and how the model's manifest is found for it (cache first; the Hub only when allowed).

Download location (cluster setting `download:`, `sparkrun sync --download`):
- `control`: this machine downloads with huggingface_hub into its own Hugging Face cache, then streams to the hosts.
- `head`: the head downloads the manifest's files with curl (pinned-commit URLs, resumable, checked against the Hub's
  sha256) into its cache, then the hosts copy from it.
- `auto` (default): `head` when the head reaches the Hub, else `control`. "Reaches" = one ranged GET of a file of
  the model from the head answers with an HTTP status below 500 within 6 s (a gated repo's 401 counts: the Hub is
  there); no answer, a connection error or a 5xx means it does not. The check runs only when a download is needed.
Older clusters' `transfer_mode` values map onto these (`clusters.download_mode`): local/push -> control,
delegated/pull -> head.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sparkrun.hosts import Host
from sparkrun.models.errors import HubUnreachableError, ModelNotCachedError
from sparkrun.models.manifest import ModelManifest, ModelRequest, cached_manifest, resolve_manifest

PARTIAL_SUFFIX: Final = ".sparkrun-partial"


def hub_offline_env() -> bool:
    """huggingface_hub's own switch (HF_HUB_OFFLINE) is set on this machine."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


@dataclass(frozen=True)
class ImageNeed:
    ref: str
    fallback: str | None = None  # a runtime's prebuilt twin, run (tagged as `ref`) when `ref` is nowhere

    @property
    def digest(self) -> str | None:
        """The digest the reference pins (`name@sha256:...`), if any."""
        return self.ref.split("@", 1)[1] if "@sha256:" in self.ref else None

    def to_json(self) -> dict[str, str | None]:
        return {"ref": self.ref, "digest": self.digest, "fallback": self.fallback}


@dataclass(frozen=True)
class ModelNeed:
    request: ModelRequest
    manifest: ModelManifest | None = None
    unknown: str = ""  # why the manifest is not known (then nothing about the model can be checked or copied)

    @property
    def label(self) -> str:
        return f"model {self.request.model}"

    def to_json(self) -> dict[str, object]:
        m = self.manifest
        data: dict[str, object] = {"model": self.request.model, "revision": self.request.revision or "main"}
        if m is None:
            return {**data, "known": False, "reason": self.unknown}
        return {
            **data,
            "known": True,
            "repo_id": m.repo_id,
            "commit": m.commit,
            "files": [f.path for f in m.files],
            "total_bytes": m.total_bytes,
            "quant": m.quant,
        }


@dataclass(frozen=True)
class SyncSpec:
    """Everything a sync needs to know before it looks at the hosts."""

    hosts: tuple[Host, ...]  # the first is the head
    hf_cache: str  # HF_HOME on the hosts (`~` = the SSH user's home there)
    model: ModelNeed | None = None
    image: ImageNeed | None = None
    download: str = "auto"
    offline: bool = False  # --offline: nothing comes from outside the cluster (and this machine)
    verify: bool = False  # hash every file again, even those whose checksum marker still matches
    job: str = ""  # the job about to use the model (recorded on each host, for model-cache)

    @property
    def hub_dir(self) -> str:
        return self.hf_cache.rstrip("/") + "/hub"

    @property
    def state_dir(self) -> str:
        return self.hf_cache.rstrip("/") + "/sparkrun"

    @property
    def head(self) -> Host:
        return self.hosts[0]


def model_need(request: ModelRequest | None, *, offline: bool, dry_run: bool, strict: bool = True) -> ModelNeed | None:
    """The model's manifest: from sparkrun's metadata cache when it has it (a dry-run, --offline or HF_HUB_OFFLINE use
    nothing else), else from the Hub (one metadata request). Not `strict` (a `run`): a Hub this machine cannot reach
    leaves the model unsynced (the engine must find it on the hosts, as with HF_HUB_OFFLINE) instead of failing."""
    if request is None:
        return None
    if dry_run or offline or hub_offline_env():
        cached = cached_manifest(request)
        if cached is not None:
            return ModelNeed(request, cached)
        why = "--offline asks" if offline else ("HF_HUB_OFFLINE is set: ask" if hub_offline_env() else "a dry-run asks")
        return ModelNeed(request, None, f"its file list is not cached on this machine and {why} the Hub nothing")
    try:
        return ModelNeed(request, resolve_manifest(request))
    except HubUnreachableError as exc:
        if strict:
            raise
        cached = cached_manifest(request)
        if cached is not None:
            return ModelNeed(request, cached)
        why = exc.cause.rsplit("cannot reach the Hub: ", 1)[-1]
        return ModelNeed(request, None, f"this machine cannot reach the Hub ({why}; `--no-sync` skips this)")


def missing_error(manifest: ModelManifest, hosts: Sequence[str], missing: Sequence[str]) -> ModelNotCachedError:
    """--offline and nobody holds the whole model: the files no host (nor this machine) has complete."""
    return ModelNotCachedError(
        f"{manifest.repo_id}@{manifest.commit[:12]}: not complete on {', '.join(hosts)} or this machine, and --offline "
        f"downloads nothing ({len(missing)} file(s) are nowhere)",
        missing=tuple(missing),
        hint="run once without --offline, or copy the model into one host's Hugging Face cache",
    )
