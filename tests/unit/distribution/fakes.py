"""Test doubles for distribution: model repos in hub layout, and a transport whose hosts are directories.

`HomesTransport` runs every host's scripts with real bash on this machine, each host with its own HOME
(`<root>/<host>`), so `~/.cache/huggingface` is a different cache per host; host-to-host commands (`direct_ssh`)
start the next host's bash the same way. Hosts listed in `dead` fail like an unreachable SSH host (exit 255)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from sparkrun.hosts import Host
from sparkrun.models.layout import RepoCache, link_snapshot_file
from sparkrun.models.manifest import ManifestFile, ModelManifest
from sparkrun.transport.local import LocalTransport

COMMIT = "c0ffee" + "0" * 34
REPO = "test-org/tiny"


def manifest_for(files: dict[str, bytes], *, repo: str = REPO, commit: str = COMMIT) -> ModelManifest:
    entries = []
    for path, data in files.items():
        if len(data) > 64:  # an LFS file: blob = sha256
            sha = hashlib.sha256(data).hexdigest()
            entries.append(ManifestFile(path, len(data), sha, sha256=sha))
        else:  # a git file: blob = git blob id
            blob_id = hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()
            entries.append(ManifestFile(path, len(data), blob_id, blob_id=blob_id))
    return ModelManifest(repo, "main", commit, "vllm", tuple(entries))


def place(hub_dir: Path, manifest: ModelManifest, files: dict[str, bytes], only: set[str] | None = None) -> None:
    """Write the files (all, or `only`) into a hub cache, as huggingface_hub lays them out."""
    cache = RepoCache(hub_dir, manifest.repo_id)
    for item in manifest.files:
        if only is not None and item.path not in only:
            continue
        blob = cache.blob(item.blob)
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(files[item.path])
        link_snapshot_file(cache, manifest.commit, item.path, item.blob)


def blob_path(hub_dir: Path, manifest: ModelManifest, path: str) -> Path:
    item = manifest.file(path)
    assert item is not None
    return RepoCache(hub_dir, manifest.repo_id).blob(item.blob)


def model_files(size: int = 3 << 20) -> dict[str, bytes]:
    """A small model: two shards of random bytes and a config (a git file)."""
    rnd = os.urandom(2 * size)
    return {
        "config.json": b'{"model_type": "llama"}',
        "model-00001-of-00002.safetensors": rnd[:size],
        "model-00002-of-00002.safetensors": rnd[size:] + b"tail",
    }


class HomesTransport(LocalTransport):
    def __init__(self, root: Path, dead: set[str] | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.root = root
        self.dead = dead or set()

    def home(self, host: Host) -> Path:
        home = self.root / host.address
        home.mkdir(parents=True, exist_ok=True)
        return home

    def argv(self, host: Host, command: str) -> list[str]:
        if host.address in self.dead:
            return ["bash", "-c", "echo 'ssh: connect to host: Connection timed out' >&2; exit 255"]
        return ["env", f"HOME={self.home(host)}", "bash", "-c", command]

    def direct_ssh(self, source: Host, sink: Host, address: str) -> list[str]:
        if sink.address in self.dead:
            return ["bash", "-c", "echo 'ssh: connect to host: Connection timed out' >&2; exit 255", "dead"]
        return ["env", f"HOME={self.home(sink)}", "bash", "-c", 'exec bash -c "$1"', "sparkrun-local-sink"]

    def hub(self, host: str) -> Path:
        return self.root / host / ".cache" / "huggingface" / "hub"
