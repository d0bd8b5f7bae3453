"""The apply engine against the in-memory FakeTransport: phases in order, steps of a phase in parallel, per-host
results, and the cleanup guarantee (a failure on one host or an interrupt undoes on every host)."""

from __future__ import annotations

import pytest

from sparkrun.core.apply import apply
from sparkrun.core.events import Cleanup, Event, PhaseStarted, StepFinished, StepProgress
from sparkrun.core.plan import Plan, Step
from sparkrun.errors import HostError
from sparkrun.hosts import Host
from sparkrun.jobs.control import stop_steps
from sparkrun.shell import Script
from sparkrun.transport.fake import FakeTransport, events

A, B, C = Host("a"), Host("b"), Host("c")


def step(host: Host, phase: str, script: str = "launch", **kw: object) -> Step:
    return Step(host, script, {"X": "1"}, f"{script} on {host}", phase, **kw)  # type: ignore[arg-type]


def launch_plan() -> Plan:
    steps = (step(A, "start group 0"), step(B, "start group 1"), step(C, "start group 1"))
    return Plan(steps, undo=stop_steps([A, B, C], "job1", settle=True, phase="undo"))


def collect() -> tuple[list[Event], object]:
    seen: list[Event] = []
    return seen, seen.append


def test_phases_run_in_order_and_every_step_reports() -> None:
    fake = FakeTransport()
    seen, emit = collect()
    finished = apply(launch_plan(), fake, emit=emit)  # type: ignore[arg-type]
    assert [h.address for h, _s in fake.scripts] == ["a", "b", "c"]
    assert [e.phase for e in seen if isinstance(e, PhaseStarted)] == ["start group 0", "start group 1"]
    assert [(f.step.host.address, f.ok) for f in finished] == [("a", True), ("b", True), ("c", True)]
    assert "stop" not in [s.name for _h, s in fake.scripts]  # nothing to undo after success


def test_a_failure_on_one_host_stops_later_phases_and_cleans_every_host() -> None:
    fake = FakeTransport({"launch": lambda h, s: events(("fail", "docker-run no such image")) if h == A else ""})
    seen, emit = collect()
    with pytest.raises(HostError) as err:
        apply(launch_plan(), fake, emit=emit)  # type: ignore[arg-type]
    assert str(err.value) == "a: docker-run: no such image"
    assert fake.ran("launch") == ["a"]  # group 1 never started
    assert sorted(fake.ran("stop")) == ["a", "b", "c"]  # the undo ran everywhere
    (cleanup,) = [e for e in seen if isinstance(e, Cleanup)]
    assert cleanup.reason == "failed" and cleanup.failed == ()


def test_every_failed_host_of_a_phase_is_reported_the_first_as_the_error() -> None:
    fake = FakeTransport({"launch": lambda h, s: events(("fail", f"start boom-{h}")) if h != A else ""})
    with pytest.raises(HostError) as err:
        apply(launch_plan(), fake)
    assert str(err.value) == "b: start: boom-b"
    assert err.value.detail is not None and "c: start: boom-c" in err.value.detail


def test_an_interrupt_undoes_on_every_host_and_propagates() -> None:
    def interrupt(host: Host, script: Script) -> str:
        if host == B:
            raise KeyboardInterrupt
        return ""

    fake = FakeTransport({"launch": interrupt})
    with pytest.raises(KeyboardInterrupt):
        apply(launch_plan(), fake)
    assert fake.terminated >= 1
    assert sorted(fake.ran("stop")) == ["a", "b", "c"]


def test_keep_on_failure_leaves_the_hosts_alone() -> None:
    fake = FakeTransport({"launch": events(("fail", "start boom"))})
    with pytest.raises(HostError):
        apply(launch_plan(), fake, keep_on_failure=True)
    assert fake.ran("stop") == []


def test_a_cleanup_that_cannot_reach_a_host_is_reported_not_hidden() -> None:
    def stop(host: Host, script: Script) -> str:
        return events(("fail", "stop connection lost")) if host == C else events(("count", "1"))

    fake = FakeTransport({"launch": events(("fail", "start boom")), "stop": stop})
    seen, emit = collect()
    with pytest.raises(HostError):
        apply(launch_plan(), fake, emit=emit)  # type: ignore[arg-type]
    (cleanup,) = [e for e in seen if isinstance(e, Cleanup)]
    assert cleanup.failed == ("c: connection lost",)


def test_noop_steps_are_reported_but_never_run() -> None:
    fake = FakeTransport()
    plan = Plan((step(A, "p", noop="already there"), step(B, "p")))
    finished = apply(plan, fake)
    assert fake.ran("launch") == ["b"]
    assert [(f.step.host.address, f.result is None) for f in finished] == [("a", True), ("b", False)]


def test_streaming_steps_report_progress_while_they_run() -> None:
    fake = FakeTransport({"readiness": events(("phase", "port"), ("phase", "models"), ("ready", "1.0"))})
    seen, emit = collect()
    apply(Plan((step(A, "ready", "readiness", stream=True),)), fake, emit=emit)  # type: ignore[arg-type]
    progress = [(e.key, e.value) for e in seen if isinstance(e, StepProgress)]
    assert progress == [("phase", "port"), ("phase", "models"), ("ready", "1.0")]
    assert isinstance(seen[-1], StepFinished)


def test_stop_is_idempotent_per_host() -> None:
    fake = FakeTransport({"stop": events(("count", "0"))})
    first = apply(Plan(stop_steps([A, B], "job1")), fake)
    second = apply(Plan(stop_steps([A, B], "job1")), fake)
    assert all(f.ok for f in first + second)
    assert fake.ran("stop") == ["a", "b", "a", "b"]


def test_each_step_gets_its_own_timeout() -> None:
    fake = FakeTransport()
    apply(Plan((step(A, "p", timeout=5.0), step(B, "p", timeout=7.0))), fake)
    assert sorted(t for t in fake.timeouts if t is not None) == [5.0, 7.0]
