"""Download once into a hub cache, against the Hub stand-in: layout, no second transfer, offline, resume, corrupt
files, gated repos and where the token is (and is not) sent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hubstub.content import Tensor, write_safetensors
from hubstub.fixtures import GATED, GGUF, LLAMA, HubModels
from hubstub.server import HubStub
from sparkrun.errors import HostError
from sparkrun.models.check import check_cache
from sparkrun.models.download import download_model
from sparkrun.models.errors import GatedModelError, ModelNotCachedError, ModelNotFoundError
from sparkrun.models.manifest import ManifestFile, ModelManifest, ModelRequest, resolve_manifest

SHARD1 = "model-00001-of-00002.safetensors"
SHARD2 = "model-00002-of-00002.safetensors"


def llama_manifest(runtime: str = "vllm-distributed", repo: str = LLAMA) -> ModelManifest:
    return resolve_manifest(ModelRequest(repo, runtime))


def test_download_builds_the_hub_cache_layout(hub: HubStub, hub_models: HubModels, tmp_path: Path) -> None:
    manifest = llama_manifest()
    hub.stats.reset()  # resolving read the safetensors index
    report = download_model(manifest, tmp_path)
    root = tmp_path / "models--test-org--tiny-llama"
    assert (root / "refs" / "main").read_text() == manifest.commit
    for item in manifest.files:
        pointer = root / "snapshots" / manifest.commit / item.path
        assert os.readlink(pointer) == f"../../blobs/{item.blob}"  # relative, as huggingface_hub makes them
        assert pointer.read_bytes() == hub_models.llama[item.path].read_bytes()
    assert set(report.fetched) == {f.path for f in manifest.files}
    assert report.bytes_fetched == manifest.total_bytes == hub.bytes_served(LLAMA)
    assert check_cache(tmp_path, manifest, verify=True).complete


def test_the_second_download_moves_no_byte_and_sends_no_request(
    hub: HubStub, hub_models: HubModels, tmp_path: Path
) -> None:
    manifest = llama_manifest()
    download_model(manifest, tmp_path)
    hub.stats.reset()
    report = download_model(manifest, tmp_path)
    assert report.fetched == () and report.bytes_fetched == 0
    assert hub.bytes_served() == 0 and hub.stats.requests == []
    assert set(report.reused) == {f.path for f in manifest.files}


def test_offline_downloads_nothing_and_names_every_missing_file(
    hub: HubStub, hub_models: HubModels, tmp_path: Path
) -> None:
    manifest = llama_manifest()
    hub.stats.reset()
    with pytest.raises(ModelNotCachedError, match=r"10 of 10 files are not in .* \(offline\)") as err:
        download_model(manifest, tmp_path, offline=True)
    assert err.value.missing == tuple(f.path for f in manifest.files)
    assert f"missing: {SHARD1}" in (err.value.detail or "")
    assert hub.stats.requests == []


def test_offline_with_the_model_cached_succeeds_without_network(
    hub: HubStub, hub_models: HubModels, tmp_path: Path
) -> None:
    manifest = llama_manifest()
    download_model(manifest, tmp_path)
    (tmp_path / "models--test-org--tiny-llama" / "snapshots" / manifest.commit / SHARD2).unlink()
    hub.stats.reset()
    report = download_model(manifest, tmp_path, offline=True)  # the blob is there: only the link is rebuilt
    assert report.fetched == () and hub.stats.requests == []
    assert report.check.complete


def test_only_the_missing_file_is_fetched(hub: HubStub, hub_models: HubModels, tmp_path: Path) -> None:
    manifest = llama_manifest()
    download_model(manifest, tmp_path)
    item = manifest.file(SHARD2)
    assert item is not None
    (tmp_path / "models--test-org--tiny-llama" / "blobs" / item.blob).unlink()
    hub.stats.reset()
    report = download_model(manifest, tmp_path)
    assert report.fetched == (SHARD2,)
    assert hub.bytes_served() == hub.bytes_served(LLAMA, SHARD2) == item.size


def test_a_truncated_file_is_fetched_again(hub: HubStub, hub_models: HubModels, tmp_path: Path) -> None:
    manifest = llama_manifest()
    download_model(manifest, tmp_path)
    item = manifest.file(SHARD1)
    assert item is not None
    blob = tmp_path / "models--test-org--tiny-llama" / "blobs" / item.blob
    blob.write_bytes(blob.read_bytes()[:1000])
    assert check_cache(tmp_path, manifest).corrupt == (SHARD1,)
    hub.stats.reset()
    download_model(manifest, tmp_path)
    assert hub.bytes_served() == item.size
    assert check_cache(tmp_path, manifest, verify=True).complete


def test_a_changed_byte_is_found_only_when_verifying(hub: HubStub, hub_models: HubModels, tmp_path: Path) -> None:
    manifest = llama_manifest()
    download_model(manifest, tmp_path)
    item = manifest.file("config.json")  # not LFS: verified by its git blob id
    assert item is not None and item.sha256 is None
    blob = tmp_path / "models--test-org--tiny-llama" / "blobs" / item.blob
    data = bytearray(blob.read_bytes())
    data[5] ^= 0xFF
    blob.write_bytes(bytes(data))
    assert download_model(manifest, tmp_path).fetched == ()  # same size: looks complete
    report = download_model(manifest, tmp_path, verify=True)
    assert report.fetched == ("config.json",)
    assert report.check.complete


def test_a_dropped_connection_resumes_within_the_call(hub: HubStub, tmp_path: Path) -> None:
    # huggingface_hub writes in 10 MiB chunks and resumes (HTTP Range) from the last whole chunk it received.
    chunk = 10 * 1024 * 1024
    big = tmp_path / "src" / "model.safetensors"
    write_safetensors(big, [Tensor("w", "BF16", (13 * 1024 * 1024,))], "big")  # ~26 MB
    hub.add_repo("test-org/big", {"model.safetensors": big, "config.json": hub_config(tmp_path)})
    manifest = llama_manifest(repo="test-org/big")
    size = big.stat().st_size
    drop = chunk + 3 * 1024 * 1024
    hub.drop_after("test-org/big", "model.safetensors", drop)
    download_model(manifest, tmp_path / "hub")
    resumed = hub.requests(server="cdn", file="model.safetensors", status=206)
    assert [r.range for r in resumed] == [f"bytes={chunk}-"]
    assert hub.bytes_served("test-org/big", "model.safetensors") == size + (drop - chunk)  # not 2 x size
    assert check_cache(tmp_path / "hub", manifest, verify=True).complete


def hub_config(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "config.json"
    path.write_text('{"model_type": "llama"}')
    return path


def _spawn_download(manifest: ModelManifest, hub_dir: Path, tmp_path: Path) -> subprocess.Popen[bytes]:
    spec = tmp_path / "manifest.json"
    spec.write_text(json.dumps(manifest.to_json()))
    code = (
        "import json, sys; from pathlib import Path\n"
        "from sparkrun.models.manifest import ModelManifest\n"
        "from sparkrun.models.download import download_model\n"
        "download_model(ModelManifest.from_json(json.load(open(sys.argv[1]))), Path(sys.argv[2]), max_workers=1)\n"
    )
    return subprocess.Popen([sys.executable, "-c", code, str(spec), str(hub_dir)], stderr=subprocess.DEVNULL)


def _wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_killed_download_resumes_without_fetching_finished_files_again(
    hub: HubStub, hub_models: HubModels, tmp_path: Path
) -> None:
    manifest = llama_manifest()
    one, two = manifest.file(SHARD1), manifest.file(SHARD2)
    assert one is not None and two is not None
    hub.throttle(LLAMA, SHARD2, two.size // 8)  # ~8 s for the second shard: it is mid-file when killed
    hub_dir = tmp_path / "hub"
    child = _spawn_download(manifest, hub_dir, tmp_path)
    try:
        _wait_for(lambda: hub.bytes_served(LLAMA, SHARD2) > 0)
        assert hub.bytes_served(LLAMA, SHARD1) == one.size
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    blobs = hub_dir / "models--test-org--tiny-llama" / "blobs"
    assert list(blobs.glob(f"{two.blob}.*.incomplete"))  # the killed process's temporary file
    hub.faults.throttles.clear()
    hub.stats.reset()
    report = download_model(manifest, hub_dir)
    assert hub.bytes_served(LLAMA, SHARD1) == 0
    assert SHARD2 in report.fetched and SHARD1 in report.reused
    assert not list(blobs.glob("*.incomplete"))
    assert check_cache(hub_dir, manifest, verify=True).complete


def test_progress_reports_every_byte(hub: HubStub, hub_models: HubModels, tmp_path: Path) -> None:
    manifest = llama_manifest()
    seen: dict[str, tuple[int, int]] = {}
    download_model(manifest, tmp_path, progress=lambda path, done, total: seen.__setitem__(path, (done, total)))
    for item in manifest.files:
        assert seen[item.path] == (item.size, item.size)


def test_not_enough_disk_space_fails_before_any_transfer(hub: HubStub, hub_models: HubModels, tmp_path: Path) -> None:
    manifest = llama_manifest()
    huge = ModelManifest(**{**manifest.__dict__, "files": (ManifestFile(SHARD1, 10**16, "0" * 64, "0" * 64),)})
    hub.stats.reset()
    with pytest.raises(HostError, match="not enough disk space"):
        download_model(huge, tmp_path)
    assert hub.stats.requests == []


def test_a_gated_model_without_token_fails_at_once_naming_the_fix(
    hub: HubStub, hub_models: HubModels, tmp_path: Path
) -> None:
    manifest = llama_manifest(repo=GATED)
    assert manifest.gated
    hub.stats.reset()
    with pytest.raises(GatedModelError) as err:
        download_model(manifest, tmp_path)
    assert str(err.value) == f"{GATED}: gated model and no Hugging Face token"
    assert "export HF_TOKEN=" in (err.value.hint or "") and f"{hub.endpoint}/{GATED}" in (err.value.hint or "")
    assert hub.stats.requests == []


def test_the_hubs_401_for_a_gated_model_becomes_the_same_error(
    hub: HubStub, hub_models: HubModels, tmp_path: Path
) -> None:
    stale = ModelManifest(**{**llama_manifest(repo=GATED).__dict__, "gated": False})  # metadata older than gating
    with pytest.raises(GatedModelError, match="gated model and no Hugging Face token"):
        download_model(stale, tmp_path)
    assert hub.requests(status=401)


def test_a_token_without_access_is_told_apart(
    hub: HubStub, hub_models: HubModels, tmp_path: Path, hf_token: Callable[[str | None], None]
) -> None:
    hf_token("hf_notallowed0000000000000000000000000000")
    with pytest.raises(GatedModelError, match="the token in HF_TOKEN has no access") as err:
        download_model(llama_manifest(repo=GATED), tmp_path)
    assert "accept the license" in (err.value.hint or "")


def test_the_token_goes_to_the_hub_and_never_to_the_cdn(
    hub: HubStub, hub_models: HubModels, tmp_path: Path, hf_token: Callable[[str | None], None]
) -> None:
    hf_token(hub_models.token)
    manifest = llama_manifest(repo=GATED)
    hub.stats.reset()
    download_model(manifest, tmp_path)
    assert check_cache(tmp_path, manifest, verify=True).complete
    hub_requests = hub.requests(server="hub")
    assert hub_requests and all(r.authorized for r in hub_requests)
    cdn_requests = hub.requests(server="cdn")
    assert cdn_requests and not any(r.authorized for r in cdn_requests)
    assert len(hub.authorized_requests()) == len(hub_requests)


def test_gguf_parts_land_in_their_subdirectory(hub: HubStub, hub_models: HubModels, tmp_path: Path) -> None:
    manifest = resolve_manifest(ModelRequest(f"{GGUF}:Q8_0", "llama-cpp"))
    download_model(manifest, tmp_path)
    part = tmp_path / "models--test-org--tiny-llama-GGUF" / "snapshots" / manifest.commit / manifest.files[0].path
    assert os.readlink(part) == f"../../../blobs/{manifest.files[0].blob}"
    assert part.read_bytes() == hub_models.gguf[manifest.files[0].path].read_bytes()


def test_the_progress_object_also_fits_the_libraries_xet_reporter() -> None:
    # The real Hub serves most weights through Xet; its progress reporter drives `tqdm_class` differently.
    import logging
    import threading
    from types import SimpleNamespace

    from huggingface_hub.utils._xet_progress_reporting import XetDownloadProgressReporter

    from sparkrun.models.download import _progress_class

    seen: list[tuple[str, int, int]] = []
    cls = _progress_class("w.safetensors", 100, lambda *a: seen.append(a), threading.Event())
    with XetDownloadProgressReporter(
        reconstruction_desc="w", total=100, log_level=logging.INFO, tqdm_class=cls
    ) as reporter:
        for done in (40, 100):
            reporter.update_progress(
                SimpleNamespace(
                    total_bytes_completed=done,
                    total_transfer_bytes_completed=done // 2,
                    total_bytes_completion_rate=1.0,
                    total_transfer_bytes_completion_rate=1.0,
                    total_bytes=100,
                )
            )
    assert seen == [("w.safetensors", 40, 100), ("w.safetensors", 100, 100)]


def test_a_failing_file_is_the_error_reported_not_the_downloads_it_cancelled(
    hub: HubStub, hub_models: HubModels, tmp_path: Path
) -> None:
    manifest = llama_manifest()
    bogus = ManifestFile("gone.safetensors", 10, "1" * 64, "1" * 64)
    broken = ModelManifest(**{**manifest.__dict__, "files": (bogus, *manifest.files)})
    with pytest.raises(ModelNotFoundError, match="a file is missing from revision"):
        download_model(broken, tmp_path, max_workers=4)
    assert not list(tmp_path.rglob("*.incomplete"))
