"""Image sync with the real host scripts on directory hosts whose `docker` is a stand-in script that keeps images as
files (save/load/inspect/pull): image ids are compared, the reference copy goes down a chain only to hosts that lack
it or hold a different image under the name, nothing is pulled when a host has it, and an image pinned by digest is
pulled by each host that lacks it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from distribution_fakes import HomesTransport

from sparkrun.distribution.report import SyncReport
from sparkrun.distribution.runner import sync
from sparkrun.distribution.spec import ImageNeed, SyncSpec
from sparkrun.hosts import Host

IMAGE = "nvidia/vllm:25.09-py3"
HOSTS = ("h1", "h2", "h3")

FAKE_DOCKER = r"""#!/usr/bin/env bash
# a docker stand-in: images are files under $HOME/images (ID, and the "archive" NAME.tar)
store=$HOME/images
mkdir -p "$store"
key() { printf '%s' "${1//[\/:@]/_}"; }
case $1 in
  version) echo 27.0 ;;
  image)
    name=${*: -1}
    [ -f "$store/$(key "$name")" ] || { echo "Error: No such image: $name" >&2; exit 1; }
    id=$(<"$store/$(key "$name")")
    case "$*" in
      *Size*) echo "$id $(stat -c %s "$store/$(key "$name").tar") $(cat "$store/$(key "$name").digests" 2>/dev/null)" ;;
      *) echo "$id" ;;
    esac ;;
  save) cat "$store/$(key "$2").tar" ;;
  load)
    tmp=$(mktemp); cat >"$tmp"
    { read -r name; read -r id; } <"$tmp"
    [ -n "$name" ] || { echo "open repositories: no such file or directory" >&2; exit 1; }
    mv "$tmp" "$store/$(key "$name").tar"; printf '%s' "$id" >"$store/$(key "$name")"
    echo "Loaded image: $name" ;;
  pull)
    name=${*: -1}
    src=$REGISTRY/$(key "$name")
    [ -f "$src" ] || { echo "Error response from daemon: pull access denied for $name" >&2; exit 1; }
    cp "$src" "$store/$(key "$name").tar"; sed -n 2p "$src" | tr -d '\n' >"$store/$(key "$name")"
    echo "${name%@*}@${name#*@}," >"$store/$(key "$name").digests" ;;
  rmi) rm -f "$store/$(key "${*: -1}")" ;;
esac
"""


def archive(name: str, ident: str, size: int = 40 << 20) -> bytes:
    return f"{name}\n{ident}\n".encode() + os.urandom(size)


@pytest.fixture
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HomesTransport:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    registry = tmp_path / "registry"
    registry.mkdir()
    monkeypatch.setenv("REGISTRY", str(registry))
    return HomesTransport(tmp_path / "hosts", path=f"{bin_dir}:{os.environ['PATH']}")


def give(homes: HomesTransport, host: str, name: str, data: bytes) -> None:
    store = homes.home(Host(host)) / "images"
    store.mkdir(parents=True, exist_ok=True)
    key = name.replace("/", "_").replace(":", "_").replace("@", "_")
    (store / f"{key}.tar").write_bytes(data)
    (store / key).write_text(data.split(b"\n")[1].decode())


def image_id(homes: HomesTransport, host: str, name: str) -> str | None:
    path = homes.root / host / "images" / name.replace("/", "_").replace(":", "_").replace("@", "_")
    return path.read_text() if path.exists() else None


def archive_of(homes: HomesTransport, host: str, name: str) -> bytes:
    key = name.replace("/", "_").replace(":", "_").replace("@", "_")
    return (homes.root / host / "images" / f"{key}.tar").read_bytes()


def run(homes: HomesTransport, name: str = IMAGE, **kw: object) -> SyncReport:
    spec = SyncSpec(tuple(Host(h) for h in HOSTS), "~/.cache/huggingface", None, ImageNeed(name), **kw)  # type: ignore[arg-type]
    return sync(spec, homes, lambda e: None)


def outcomes(report: SyncReport) -> dict[str, tuple[int, str, str | None]]:
    return {h: (o.moved, o.route, o.error) for h, o in report.items[0].hosts.items()}


def test_the_image_goes_down_a_chain_from_the_host_that_has_it(homes: HomesTransport) -> None:
    data = archive(IMAGE, "sha256:aaa")
    give(homes, "h3", IMAGE, data)
    report = run(homes)
    assert outcomes(report) == {
        "h1": (len(data), "from h3", None),
        "h2": (len(data), "from h1", None),
        "h3": (0, "already has it", None),
    }
    assert {h: image_id(homes, h, IMAGE) for h in HOSTS} == dict.fromkeys(HOSTS, "sha256:aaa")
    assert all(archive_of(homes, h, IMAGE) == data for h in HOSTS)  # byte for byte, nothing added on the way


def test_a_host_with_another_image_under_the_name_gets_the_heads(homes: HomesTransport) -> None:
    head = archive(IMAGE, "sha256:head")
    for host in HOSTS:
        give(homes, host, IMAGE, head)
    give(homes, "h2", IMAGE, archive(IMAGE, "sha256:stale"))
    report = run(homes)
    assert {h: o[0] > 0 for h, o in outcomes(report).items()} == {"h1": False, "h2": True, "h3": False}
    assert image_id(homes, "h2", IMAGE) == "sha256:head"


def test_nothing_is_pulled_when_a_host_has_it_and_offline_nothing_is_pulled_at_all(
    homes: HomesTransport, tmp_path: Path
) -> None:
    (tmp_path / "registry" / "nvidia_vllm_25.09-py3").write_bytes(archive(IMAGE, "sha256:reg"))
    give(homes, "h2", IMAGE, archive(IMAGE, "sha256:local"))
    run(homes)
    assert {image_id(homes, h, IMAGE) for h in HOSTS} == {"sha256:local"}  # the registry's was never fetched
    other = "nvidia/other:1"
    report = run(homes, other, offline=True)
    assert all(o[2] and "--offline" in o[2] for o in outcomes(report).values())


def test_the_head_pulls_an_image_no_host_has_and_sends_it_on(homes: HomesTransport, tmp_path: Path) -> None:
    data = archive(IMAGE, "sha256:reg")
    (tmp_path / "registry" / "nvidia_vllm_25.09-py3").write_bytes(data)
    report = run(homes)
    assert outcomes(report) == {
        "h1": (0, "pulled from its registry", None),
        "h2": (len(data), "from h1", None),
        "h3": (len(data), "from h2", None),
    }


def test_an_image_pinned_by_digest_is_pulled_by_each_host_that_lacks_it(homes: HomesTransport, tmp_path: Path) -> None:
    pinned = f"nvidia/vllm@sha256:{'d' * 64}"
    data = archive(pinned, "sha256:pinned")
    (tmp_path / "registry" / pinned.replace("/", "_").replace(":", "_").replace("@", "_")).write_bytes(data)
    give(homes, "h1", pinned, data)
    report = run(homes, pinned)
    assert outcomes(report) == {
        "h1": (0, "already has it", None),
        "h2": (0, "pulled by digest", None),
        "h3": (0, "pulled by digest", None),
    }
    assert {image_id(homes, h, pinned) for h in HOSTS} == {"sha256:pinned"}
