"""Where a model is downloaded once, against the Hub stand-in: on the head with curl (resumable, the token only on
the script's stdin) or on this machine with huggingface_hub, and `auto` choosing between them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from distribution_fakes import HomesTransport, blob_path

from hubstub.fixtures import GATED, LLAMA, HubModels
from hubstub.server import HubStub
from sparkrun.core.events import Event
from sparkrun.distribution.report import SyncReport
from sparkrun.distribution.runner import sync
from sparkrun.distribution.spec import ModelNeed, SyncSpec
from sparkrun.hosts import Host
from sparkrun.models.check import check_cache
from sparkrun.models.manifest import ModelManifest, ModelRequest, resolve_manifest

HOSTS = ("h1", "h2", "h3")
SHARD = "model-00001-of-00002.safetensors"


def manifest_of(repo: str = LLAMA) -> ModelManifest:
    return resolve_manifest(ModelRequest(repo, "vllm"))


def run(transport: HomesTransport, manifest: ModelManifest, download: str) -> SyncReport:
    need = ModelNeed(ModelRequest(manifest.repo_id, "vllm"), manifest)
    spec = SyncSpec(tuple(Host(h) for h in HOSTS), "~/.cache/huggingface", need, None, download=download)
    seen: list[Event] = []
    report = sync(spec, transport, seen.append)
    assert not report.failed, report.failed
    assert all(check_cache(transport.hub(h), manifest, verify=True).complete for h in HOSTS)
    return report


def test_the_head_downloads_once_and_the_others_copy_from_it(
    hub: HubStub, hub_models: HubModels, homes: HomesTransport, control_hub: Path
) -> None:
    manifest = manifest_of()
    hub.stats.reset()
    report = run(homes, manifest, "head")
    assert hub.bytes_served(LLAMA) == manifest.total_bytes  # once, not once per host
    item = report.items[0]
    assert item.source == "h1" and item.downloaded == manifest.total_bytes
    assert item.hosts["h2"].route == "from h1" and item.hosts["h3"].route == "from h2"
    assert not control_hub.exists()


def test_a_download_here_is_streamed_to_the_hosts(
    hub: HubStub, hub_models: HubModels, homes: HomesTransport, control_hub: Path
) -> None:
    manifest = manifest_of()
    hub.stats.reset()
    report = run(homes, manifest, "control")
    assert hub.bytes_served(LLAMA) == manifest.total_bytes
    assert report.items[0].source == "this machine"
    assert check_cache(control_hub, manifest, verify=True).complete


def test_auto_downloads_on_the_head_when_it_reaches_the_hub(
    hub: HubStub, hub_models: HubModels, homes: HomesTransport, control_hub: Path
) -> None:
    report = run(homes, manifest_of(), "auto")
    assert report.items[0].source == "h1" and not control_hub.exists()


def test_auto_downloads_here_when_the_head_cannot_reach_the_hub(
    hub: HubStub, hub_models: HubModels, tmp_path: Path, control_hub: Path
) -> None:
    bin_dir = tmp_path / "bin"  # the hosts' curl cannot connect anywhere
    bin_dir.mkdir()
    (bin_dir / "curl").write_text("#!/bin/sh\necho 'curl: (7) Failed to connect' >&2\nprintf 000\nexit 7\n")
    (bin_dir / "curl").chmod(0o755)
    homes = HomesTransport(tmp_path / "hosts", path=f"{bin_dir}:/usr/bin:/bin:/usr/sbin:/sbin")
    report = run(homes, manifest_of(), "auto")
    assert report.items[0].source == "this machine"


def test_an_interrupted_download_on_the_head_resumes_from_its_partial_file(
    hub: HubStub, hub_models: HubModels, homes: HomesTransport, control_hub: Path
) -> None:
    manifest = manifest_of()
    data = hub_models.llama[SHARD].read_bytes()
    partial = Path(str(blob_path(homes.hub("h1"), manifest, SHARD)) + ".sparkrun-partial")
    partial.parent.mkdir(parents=True)
    partial.write_bytes(data[: len(data) // 2])
    hub.stats.reset()
    run(homes, manifest, "head")
    assert hub.bytes_served(LLAMA, SHARD) == len(data) - len(data) // 2


def test_a_gated_model_reaches_the_head_with_the_token_on_stdin_only(
    hub: HubStub,
    hub_models: HubModels,
    homes: HomesTransport,
    control_hub: Path,
    hf_token: Callable[[str | None], None],
) -> None:
    hf_token(hub_models.token)
    manifest = manifest_of(GATED)
    hub.stats.reset()
    run(homes, manifest, "head")
    assert hub.requests(server="hub") and all(r.authorized for r in hub.requests(server="hub"))
    assert not any(r.authorized for r in hub.requests(server="cdn"))  # curl drops it on the redirect
    assert not any(hub_models.token in s.text for s in homes.sent)
    assert [s.name for s in homes.sent if hub_models.token.encode() in s.stdin] == ["model_recv"]


def test_a_gated_model_without_a_token_fails_naming_the_head_and_the_file(
    hub: HubStub, hub_models: HubModels, homes: HomesTransport, control_hub: Path
) -> None:
    from sparkrun.errors import HostError

    manifest = manifest_of(GATED)
    need = ModelNeed(ModelRequest(manifest.repo_id, "vllm"), manifest)
    spec = SyncSpec(tuple(Host(h) for h in HOSTS), "~/.cache/huggingface", need, None, download="head")
    with pytest.raises(HostError, match=r"^h1: model download: .*(401|403)"):
        sync(spec, homes, lambda e: None)
