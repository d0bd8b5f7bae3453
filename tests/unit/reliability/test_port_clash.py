"""A port another sparkrun job holds on a host is named in the refusal (running, or still starting: an active launch
lease there), before anything starts; a port something else listens on is refused as busy."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparkrun.api import RecipeInput, Session, Target
from sparkrun.errors import HostError
from sparkrun.hosts import Host
from sparkrun.jobs.records import JobStore
from sparkrun.shell import Script
from sparkrun.transport.fake import FakeTransport, events

IMAGE = "sparkrun-test/engine:latest"


def probe_with(*extra: tuple[str, str]) -> FakeTransport:
    def probe(host: Host, script: Script) -> str:
        base = (("docker", "ok 27.0"), ("home", "/root"), ("curl", "yes"), ("image", f"{IMAGE} sha256:1"))
        return events(*base, *extra)

    return FakeTransport({"probe": probe})


def run(t: FakeTransport, tmp_path: Path) -> HostError:
    session = Session(transport=t, store=JobStore(tmp_path))
    with pytest.raises(HostError) as err:
        session.run(RecipeInput("qwen3-1.7b-vllm", image=IMAGE), Target(hosts="10.0.0.1"))
    assert t.ran("launch") == [] and t.ran("lease") == []  # refused before anything starts
    return err.value


def test_a_port_held_by_another_running_job_is_refused_naming_it(tmp_path: Path) -> None:
    t = probe_with(("port", "8000 busy"), ("job", "aaaaaaaaaaaa 8000 running solo other-recipe"))
    error = run(t, tmp_path)
    assert str(error) == "10.0.0.1: probe: port 8000 is taken by job aaaaaaaaaaaa (other-recipe, running)"
    assert error.hint is not None and "sparkrun stop aaaaaaaaaaaa" in error.hint


def test_a_job_still_starting_is_named_as_starting_even_before_its_engine_listens(tmp_path: Path) -> None:
    t = probe_with(("job", "bbbbbbbbbbbb 8000 running head slow"), ("lease", "bbbbbbbbbbbb"))
    assert run(t, tmp_path).cause == "port 8000 is taken by job bbbbbbbbbbbb (slow, starting)"


def test_workers_and_exited_containers_hold_no_port_but_a_stranger_listening_does(tmp_path: Path) -> None:
    t = probe_with(
        ("job", "cccccccccccc 8000 running worker w"),
        ("job", "dddddddddddd 8000 exited solo gone"),
        ("port", "8000 busy"),
    )
    assert run(t, tmp_path).cause == "port 8000 is already in use"
