"""Test doubles for distribution: model repos in hub layout, and a transport whose hosts are directories.

`HomesTransport` runs every host's scripts with real bash on this machine, each host with its own HOME
(`<root>/<host>`), so `~/.cache/huggingface` is a different cache per host; host-to-host commands (`direct_ssh`)
start the next host's bash the same way. Hosts listed in `dead` fail like an unreachable SSH host (exit 255); a host
in `dies` takes the first connection from another host, reads `dies_after` bytes of it and goes away, then is dead."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

from sparkrun.hosts import Host
from sparkrun.models.layout import RepoCache, link_snapshot_file
from sparkrun.models.manifest import ManifestFile, ModelManifest
from sparkrun.shell import Script
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


UNREACHABLE = ["bash", "-c", "echo 'ssh: connect to host: Connection timed out' >&2; exit 255", "dead"]


class HomesTransport(LocalTransport):
    def __init__(
        self,
        root: Path,
        dead: set[str] | None = None,
        dies: set[str] | None = None,
        dies_after: int = 1 << 20,
        path: str | None = None,
    ) -> None:
        super().__init__()
        self.root = root
        self.dead = set(dead or ())
        self.dies = set(dies or ())
        self.dies_after = dies_after
        self.path = path  # PATH on the hosts (default: this machine's)
        self.sent: list[Script] = []  # every script this transport started (text and stdin)

    def _spawn(self, host: Host, script: Script, timeout: float | None, **kw: Any) -> subprocess.Popen[bytes]:
        self.sent.append(script)
        return super()._spawn(host, script, timeout, **kw)

    def _env(self, host: Host) -> list[str]:
        return ["env", f"HOME={self.home(host)}", *([f"PATH={self.path}"] if self.path else [])]

    def home(self, host: Host) -> Path:
        home = self.root / host.address
        home.mkdir(parents=True, exist_ok=True)
        return home

    def is_dead(self, host: Host) -> bool:
        return host.address in self.dead or (self.root / f"{host.address}.died").exists()

    def argv(self, host: Host, command: str) -> list[str]:
        if self.is_dead(host):
            return UNREACHABLE[:3]
        return [*self._env(host), "bash", "-c", command]

    def direct_ssh(self, source: Host, sink: Host, address: str) -> list[str]:
        if self.is_dead(sink):
            return UNREACHABLE
        if sink.address in self.dies:  # answers `true` (a reach check); a copy reads some bytes, then the host is gone
            marker = self.root / f"{sink.address}.died"
            lost = (
                f'[ "$1" = true ] && exit 0; head -c {self.dies_after} >/dev/null; touch {marker}; '
                "echo 'Timeout, server not responding.' >&2; exit 255"
            )
            return ["bash", "-c", lost, "dies"]
        return [*self._env(sink), "bash", "-c", 'exec bash -c "$1"', "sparkrun-local-sink"]

    def hub(self, host: str) -> Path:
        return self.root / host / ".cache" / "huggingface" / "hub"
