"""pytest fixtures for the Hub stand-in. Import them into a conftest.py:

    from hubstub.fixtures import hub, hub_models, no_foreign_hosts  # noqa: F401

- `hub`: a started `HubStub` on `HUBSTUB_BIND` (default 127.0.0.1; e2e binds 10.213.0.1 so test hosts reach it),
  with `HF_ENDPOINT` pointing at it, `HF_HUB_OFFLINE` off and huggingface_hub's import-time endpoint constants
  redirected (the library reads `HF_ENDPOINT` once, at import), plus `no_foreign_hosts`.
- `hub_models`: the standard test repos, generated once per session and served by `hub`:
  `test-org/tiny-llama` (safetensors, 2 shards, distractors), `test-org/tiny-llama-GGUF` (Q4_K_M, split Q8_0,
  mmproj), `test-org/gated-llama` (gated; token `hf_stubtoken...` in `hub_models.token`).
- `no_foreign_hosts`: fails the test if anything resolves or connects to a host other than loopback or the
  stand-in's address (so nothing reaches the real Hub).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hubstub.presets import write_gguf_repo, write_llama_repo
from hubstub.server import HubStub

GOOD_TOKEN = "hf_stubtoken0123456789abcdefghijklmnopqrstu"
LLAMA = "test-org/tiny-llama"
GGUF = "test-org/tiny-llama-GGUF"
GATED = "test-org/gated-llama"


@dataclass(frozen=True)
class HubModels:
    llama: dict[str, Path]
    gguf: dict[str, Path]
    token: str = GOOD_TOKEN


@pytest.fixture(scope="session")
def hub_model_files(tmp_path_factory: pytest.TempPathFactory) -> HubModels:
    root = tmp_path_factory.mktemp("hub-models")
    return HubModels(llama=write_llama_repo(root / "llama"), gguf=write_gguf_repo(root / "gguf"))


@pytest.fixture
def no_foreign_hosts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    allowed = {"127.0.0.1", "::1", "localhost", os.environ.get("HUBSTUB_BIND", "127.0.0.1")}
    foreign: list[str] = []
    real_getaddrinfo = socket.getaddrinfo
    real_create = socket.create_connection

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and str(host) not in allowed:
            foreign.append(str(host))
            raise OSError(f"test guard: lookup of {host} refused (only the Hub stand-in may be reached)")
        return real_getaddrinfo(host, *args, **kwargs)

    def guarded_create(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        if str(address[0]) not in allowed:
            foreign.append(str(address[0]))
            raise OSError(f"test guard: connection to {address[0]} refused")
        return real_create(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", guarded_create)
    yield foreign
    assert not foreign, f"something tried to reach hosts other than the Hub stand-in: {sorted(set(foreign))}"


def point_huggingface_hub_at(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the already-imported library use `endpoint` and allow network (tests/conftest.py sets offline)."""
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_PROGRESS_BARS", True)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, no_foreign_hosts: list[str]) -> Iterator[HubStub]:
    stub = HubStub(os.environ.get("HUBSTUB_BIND", "127.0.0.1"), tokens=frozenset({GOOD_TOKEN})).start()
    point_huggingface_hub_at(stub.endpoint, monkeypatch)
    try:
        yield stub
    finally:
        stub.stop()


@pytest.fixture
def hub_models(hub: HubStub, hub_model_files: HubModels) -> HubModels:
    hub.add_repo(LLAMA, hub_model_files.llama)
    hub.add_repo(GGUF, hub_model_files.gguf)
    hub.add_repo(GATED, hub_model_files.llama, gated=True)
    return hub_model_files


@pytest.fixture
def hf_token(monkeypatch: pytest.MonkeyPatch) -> Callable[[str | None], None]:
    """`hf_token(GOOD_TOKEN)` exports HF_TOKEN for the test; `hf_token(None)` removes it."""

    def set_token(value: str | None) -> None:
        if value is None:
            monkeypatch.delenv("HF_TOKEN", raising=False)
        else:
            monkeypatch.setenv("HF_TOKEN", value)

    return set_token
