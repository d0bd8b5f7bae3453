"""sync_probe.sh on a directory host: what it reports (model files, unfinished copies, images with their digests, the
CX7 addresses from ib_detect) and the checksum markers that spare a second hashing of unchanged files."""

from __future__ import annotations

import os
from pathlib import Path

from distribution_fakes import HomesTransport, blob_path, place

from sparkrun.distribution.facts import HostHoldings, parse_holdings, probe_values
from sparkrun.distribution.spec import ImageNeed, ModelNeed, SyncSpec
from sparkrun.hosts import Host
from sparkrun.models.check import FileState
from sparkrun.models.manifest import ModelManifest, ModelRequest
from sparkrun.shell import render_script

SHARD = "model-00001-of-00002.safetensors"


def probe(homes: HomesTransport, manifest: ModelManifest, **values: object) -> tuple[str, HostHoldings]:
    need = ModelNeed(ModelRequest(manifest.repo_id, "vllm"), manifest)
    spec = SyncSpec((Host("h1"), Host("h2")), "~/.cache/huggingface", need, ImageNeed("img:1"))
    script = render_script("sync_probe", {**probe_values(spec, multi=True), **values})
    result = homes.run(Host("h1"), script)
    return result.stdout, parse_holdings("h1", result, manifest)


def docker_and_ib(tmp_path: Path) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(
        "#!/bin/sh\ncase $1 in version) echo 27.0;; image) echo 'sha256:abc 4242 reg/img@sha256:d1,';; esac\n"
    )
    (bin_dir / "docker").chmod(0o755)
    return f"{bin_dir}:{os.environ['PATH']}"


FAKE_IB = 'echo "SPARKRUN_IB_ADDRESSES=192.168.100.${HEAD_ADDRESS##*.}"; echo "NCCL_IB_DISABLE=0"'


def test_the_probe_reports_files_partials_images_and_cx7_addresses(
    tmp_path: Path, manifest: ModelManifest, files: dict[str, bytes]
) -> None:
    homes = HomesTransport(tmp_path / "hosts", path=docker_and_ib(tmp_path))
    place(homes.hub("h1"), manifest, files, only={"config.json"})
    partial = Path(str(blob_path(homes.hub("h1"), manifest, SHARD)) + ".sparkrun-partial")
    partial.write_bytes(b"x" * 1234)
    _out, held = probe(homes, manifest, IB_DETECT=FAKE_IB, HEAD_ADDRESS="10.0.0.7")
    assert held.error is None
    assert held.wants() == (SHARD, "model-00002-of-00002.safetensors")
    assert held.partial == {SHARD: 1234} and held.resume_from(SHARD) == 1234
    assert held.images == {"img:1": "sha256:abc"} and held.image_sizes == {"img:1": 4242}
    assert held.digests == {"img:1": ("reg/img@sha256:d1",)}
    assert held.ib_addresses == ("192.168.100.7",)
    assert held.free_bytes and held.curl


def test_a_file_hashed_once_is_not_hashed_again_until_it_changes(
    tmp_path: Path, manifest: ModelManifest, files: dict[str, bytes]
) -> None:
    homes = HomesTransport(tmp_path / "hosts")
    place(homes.hub("h1"), manifest, files)
    _out, held = probe(homes, manifest)
    assert held.model_complete
    blob = blob_path(homes.hub("h1"), manifest, SHARD)
    marker = homes.hub("h1").parent / "sparkrun" / "verified" / manifest.folder / blob.name
    assert marker.is_file()  # written after the first successful hash
    data = bytearray(blob.read_bytes())
    data[7] ^= 1
    blob.write_bytes(bytes(data))  # a rewrite changes mtime/ctime: the marker no longer matches
    _out, held = probe(homes, manifest)
    states = {f.path: f.state for f in held.check.files}
    assert states[SHARD] is FileState.CHECKSUM and not marker.exists()


def test_with_verify_every_file_is_hashed_again(
    tmp_path: Path, manifest: ModelManifest, files: dict[str, bytes]
) -> None:
    homes = HomesTransport(tmp_path / "hosts")
    place(homes.hub("h1"), manifest, files)
    probe(homes, manifest)
    blob = blob_path(homes.hub("h1"), manifest, SHARD)
    stat = blob.stat()
    data = bytearray(blob.read_bytes())
    data[7] ^= 1
    blob.write_bytes(bytes(data))
    os.utime(blob, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime, but ctime still changes
    _out, held = probe(homes, manifest, VERIFIED_DIR="")  # what --verify renders
    assert {f.path: f.state for f in held.check.files}[SHARD] is FileState.CHECKSUM
