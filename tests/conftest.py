"""Shared fixtures. Every test runs with its own HOME, config and cache directories, so nothing reads or writes the
real `~/.config/sparkrun`, `~/.cache/sparkrun` or `~/.ssh`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# The reliability report (docs/reliability.md): cases recorded by the reliability suites through `reliability`.
pytest_plugins = ["reliability_report"]


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("SPARKRUN_CONFIG_DIR", str(home / ".config" / "sparkrun"))
    monkeypatch.setenv("SPARKRUN_CACHE_DIR", str(home / ".cache" / "sparkrun"))
    for var in ("SPARKRUN_PLUGINS", "XDG_RUNTIME_DIR", "SSH_AUTH_SOCK", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    # Never let git or Hugging Face reach the network from a test.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    yield home
