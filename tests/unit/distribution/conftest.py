"""Distribution tests: real host scripts run by bash on this machine, each test host a directory with its own HOME
(`distribution_fakes.HomesTransport`); the Hub stand-in for downloads."""

from __future__ import annotations

from pathlib import Path

import pytest
from distribution_fakes import HomesTransport, manifest_for, model_files, place

from hubstub.fixtures import hf_token, hub, hub_model_files, hub_models, no_foreign_hosts  # noqa: F401
from sparkrun.models.manifest import ModelManifest


@pytest.fixture
def homes(tmp_path: Path) -> HomesTransport:
    return HomesTransport(tmp_path / "hosts")


@pytest.fixture
def control_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This machine's Hugging Face hub cache (HF_HUB_CACHE), empty."""
    hub_dir = tmp_path / "control-hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_dir))
    return hub_dir


@pytest.fixture
def files() -> dict[str, bytes]:
    return model_files()


@pytest.fixture
def manifest(files: dict[str, bytes]) -> ModelManifest:
    return manifest_for(files)


@pytest.fixture
def model_here(control_hub: Path, manifest: ModelManifest, files: dict[str, bytes]) -> ModelManifest:
    """The model, complete in this machine's cache."""
    place(control_hub, manifest, files)
    return manifest
