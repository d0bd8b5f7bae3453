"""Where a model copy starts: a host or this machine that already holds the whole model, else one download from the
Hub: here with huggingface_hub (`models.download`), or on the head with curl (`model_recv.sh` MODE=fetch: the
manifest's files at the pinned commit, resumed from a partial copy, checked against the Hub's sha256; the token, if
any, travels on the script's stdin). Which one: the cluster's `download:` setting (spec.py documents `auto`)."""

from __future__ import annotations

import os
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from urllib.parse import quote

from sparkrun.core.events import TransferProgress
from sparkrun.core.plan import Plan, Step
from sparkrun.distribution.chain import NextHop, Tracker
from sparkrun.distribution.facts import Context, HostHoldings
from sparkrun.distribution.route import THIS_MACHINE
from sparkrun.distribution.spec import SyncSpec
from sparkrun.errors import HostError
from sparkrun.hosts import Host
from sparkrun.models.check import check_cache
from sparkrun.models.hub import hub_endpoint
from sparkrun.models.layout import default_hub_dir
from sparkrun.models.manifest import ModelManifest
from sparkrun.shell import ParamValue, render_script


def copy_timeout(nbytes: int) -> float:
    return 600.0 + nbytes / 10e6  # the stall watchdog ends a stuck copy much sooner


class _Fetch:
    """What the tracker reports for a download on the head (`chain.Progress`): its name and expected bytes."""

    def __init__(self, manifest: ModelManifest, total: int) -> None:
        self.item = f"download {manifest.repo_id}"
        self._total = total

    def total(self, host: str) -> int:
        return self._total


def _download_here(context: Context, manifest: ModelManifest) -> int:
    """Download into this machine's Hugging Face cache (huggingface_hub); the bytes fetched."""
    from sparkrun.models.download import download_model  # deferred: imports huggingface_hub

    done: dict[str, int] = {}
    lock = threading.Lock()
    item = f"download {manifest.repo_id}"

    def progress(path: str, nbytes: int, _size: int) -> None:
        with lock:
            done[path] = nbytes
            total = sum(done.values())
        context.emit(TransferProgress(THIS_MACHINE, item, total, manifest.total_bytes))

    report = download_model(manifest, default_hub_dir(), progress=progress)
    context.emit(TransferProgress(THIS_MACHINE, item, manifest.total_bytes, manifest.total_bytes))
    return report.bytes_fetched


def file_table(manifest: ModelManifest) -> dict[str, ParamValue]:
    """The manifest's file table as both ends of a model copy take it (model_send.sh, model_recv.sh)."""
    return {
        "REPO_FOLDER": manifest.folder,
        "FILE_PATHS": [f.path for f in manifest.files],
        "FILE_SIZES": [str(f.size) for f in manifest.files],
        "FILE_BLOBS": [f.blob for f in manifest.files],
    }


def recv_table(spec: SyncSpec, manifest: ModelManifest, wanted: Collection[str]) -> dict[str, ParamValue]:
    """What model_recv.sh takes in either mode (a hop of a copy, or a download): where the cache is, the file table
    with its checksums, and which of the files this host takes (`wanted`: paths)."""
    return {
        "HUB_DIR": spec.hub_dir,
        "STATE_DIR": spec.state_dir,
        **file_table(manifest),
        "FILE_SHA256": [f.sha256 or "" for f in manifest.files],
        "FILE_BLOB_IDS": [f.blob_id or "" for f in manifest.files],
        "WANT": ["1" if f.path in wanted else "0" for f in manifest.files],
    }


def _fetch_values(context: Context, manifest: ModelManifest, head: HostHoldings) -> dict[str, ParamValue]:
    base = f"{hub_endpoint()}/{manifest.repo_id}/resolve/{manifest.commit}/"
    return {
        "MODE": "fetch",
        "NAME": context.spec.head.address,
        **recv_table(context.spec, manifest, set(head.wants())),
        "SKIP_BYTES": "0",
        **NextHop().values(),
        "FILE_URLS": [base + quote(f.path) for f in manifest.files],
    }


def _download_on_head(context: Context, manifest: ModelManifest, head: HostHoldings) -> int:
    """The head fetches its missing files from the Hub with curl; the token travels on the script's stdin."""
    values = _fetch_values(context, manifest, head)
    total = head.bytes_wanted(manifest)
    script = render_script("model_recv", values, stdin=(hub_token() + "\n").encode())
    tracker = Tracker(_Fetch(manifest, total), [head.host], context.emit)
    stream = context.transport.stream(context.spec.head, script, timeout=copy_timeout(total))
    tracker.pump(stream)
    result = stream.result()
    hop = tracker.hops[head.host]
    if hop.error or not result.ok:
        cause = hop.error or result.failure()[1]
        hint = "check the head's network and HF_ENDPOINT, or download here instead (`--download control`)"
        raise HostError(head.host, "model download", cause, hint=hint)
    return hop.written


def hub_token() -> str:
    """The token huggingface_hub would use, from the environment only (never an argument or a value)."""
    return (os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or "").strip()


def _head_reaches_hub(context: Context, manifest: ModelManifest, head: HostHoldings) -> bool:
    """`download: auto`: the head downloads when it has curl and one ranged GET of a model file from it gets an HTTP
    answer below 500 within 6 s (spec.py documents the rule)."""
    if not head.curl:
        return False
    smallest = min(manifest.files, key=lambda f: f.size)
    url = f"{hub_endpoint()}/{manifest.repo_id}/resolve/{manifest.commit}/{quote(smallest.path)}"
    values: dict[str, ParamValue] = {"ADDRESSES": [], "ARGV": [], "ARGC": [], "HUB_URL": url}
    step = Step(context.spec.head, "sync_reach", values, f"does {head.host} reach the Hub", "sync: hub", timeout=30)
    ((_step, result),) = context.run(Plan((step,)))
    code = result.output.last("hub") or "000"
    return result.ok and code.isdigit() and 100 <= int(code) < 500


@dataclass
class Source:
    host: Host | None  # None: this machine
    hub_dir: str
    downloaded: int = 0

    @property
    def name(self) -> str:
        return self.host.address if self.host is not None else THIS_MACHINE


def find_source(
    context: Context, manifest: ModelManifest, holdings: Mapping[str, HostHoldings], failed: Mapping[str, str]
) -> Source | None:
    """A complete copy that exists already: a host (the head first), else this machine's cache."""
    spec = context.spec
    for host in spec.hosts:
        held = holdings.get(host.address)
        if held is not None and held.model_complete and host.address not in failed:
            return Source(host, spec.hub_dir)
    local = default_hub_dir()
    if not check_cache(local, manifest).to_fetch:
        return Source(None, str(local))
    return None


def download(context: Context, manifest: ModelManifest, holdings: Mapping[str, HostHoldings]) -> Source:
    """Fetch once from the Hub, where the cluster's `download:` setting says (auto: the head if it reaches it)."""
    spec = context.spec
    head = holdings.get(spec.head.address)
    mode = spec.download
    if mode == "auto":
        reaches = head is not None and not head.error and _head_reaches_hub(context, manifest, head)
        mode = "head" if reaches else "control"
    if mode == "head" and head is not None and not head.error:
        fetched = _download_on_head(context, manifest, head)
        return Source(spec.head, spec.hub_dir, fetched)
    return Source(None, str(default_hub_dir()), _download_here(context, manifest))
