"""The Hub stand-in also runs as its own process (how e2e tests serve test hosts and how benchmarks use it):
it prints its endpoint once ready and the real library downloads from it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sparkrun.models.check import check_cache
from sparkrun.models.download import download_model
from sparkrun.models.manifest import ModelRequest, resolve_manifest

TESTS = Path(__file__).parents[2]


def test_the_stand_in_process_serves_its_repos(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_foreign_hosts: list[str]
) -> None:
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hubstub", "--bind", "127.0.0.1", "--data", str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        assert "test-org/tiny-llama" in ready["repos"] and "test-org/gated-llama" in ready["repos"]
        from hubstub.fixtures import point_huggingface_hub_at

        point_huggingface_hub_at(ready["endpoint"], monkeypatch)
        manifest = resolve_manifest(ModelRequest("test-org/tiny-llama-GGUF:Q4_K_M", "llama-cpp"))
        download_model(manifest, tmp_path / "hub")
        assert check_cache(tmp_path / "hub", manifest, verify=True).complete
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
