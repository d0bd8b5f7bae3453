"""The launch lease seen from the control machine, against the in-memory FakeTransport: where the lease steps sit in
the plan, which launches have none, how the heartbeat renews, when it gives a host up (and ends the launch at once),
and how a failed launch is then reported (the lost host, not the step that failed because of it)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from sparkrun.api import RecipeInput, Session, Target
from sparkrun.config import UserConfig
from sparkrun.core.events import Event, Note
from sparkrun.errors import ConfigError, HostError, Interrupted, WorkloadError
from sparkrun.hosts import Host
from sparkrun.jobs.records import JobStore
from sparkrun.launch.lease import Heartbeat, HostBeat, Lease, lease_seconds
from sparkrun.shell import Script
from sparkrun.transport.base import Result
from sparkrun.transport.fake import FakeTransport, events

IMAGE = "sparkrun-test/engine:latest"
A, B = Host("10.0.0.1"), Host("10.0.0.2")


def probe(host: Host, script: Script) -> str:
    return events(("docker", "ok 27.0"), ("home", "/root"), ("curl", "yes"), ("image", f"{IMAGE} sha256:1"))


def lease_answer(state: str = "active") -> str:
    return events(("lease", f"{state} 0"))


def fake() -> FakeTransport:
    return FakeTransport({"probe": probe, "lease": lambda h, s: lease_answer(), "readiness": events(("ready", "1"))})


def session(t: FakeTransport, tmp_path: Path) -> tuple[Session, list[Event]]:
    seen: list[Event] = []
    return Session(emit=seen.append, transport=t, store=JobStore(tmp_path)), seen


def given(**values: object) -> RecipeInput:
    return RecipeInput("qwen3-1.7b-vllm", values=values, image=IMAGE)


def actions(t: FakeTransport) -> list[tuple[str, str]]:
    """(host, lease action) for every lease.sh the transport ran."""
    return [
        (h.address, s.text.split("readonly ACTION=", 1)[1].split("\n", 1)[0]) for h, s in t.scripts if s.name == "lease"
    ]


def test_the_lease_is_taken_after_the_probe_before_any_start_and_confirmed_last(tmp_path: Path) -> None:
    t = fake()
    s, _seen = session(t, tmp_path)
    s.run(given(tensor_parallel=2), Target(hosts="10.0.0.1,10.0.0.2"))
    names = [sc.name for _h, sc in t.scripts if sc.name != "lease" or "ACTION=start" in sc.text or "confirm" in sc.text]
    assert names[:4] == ["probe", "probe", "lease", "lease"]
    assert names.index("launch") > names.index("lease") and names[-2:] == ["lease", "lease"]
    assert [a for _h, a in actions(t)][:2] == ["start", "start"] and [a for _h, a in actions(t)][-2:] == ["confirm"] * 2
    launches = [sc.text for _h, sc in t.scripts if sc.name == "launch"]
    token = next(sc.text for _h, sc in t.scripts if sc.name == "lease").split("readonly LEASE_TOKEN=")[1].split("\n")[0]
    assert all(f"readonly LEASE_TOKEN={token}" in text for text in launches)


def test_the_dry_run_shows_the_lease_steps_the_run_takes(tmp_path: Path) -> None:
    s, _seen = session(fake(), tmp_path)
    plan = s.plan_run(given(), Target(hosts="10.0.0.1")).plan
    phases = [p for p, _steps in plan.phases() if not p.startswith("sync")]
    assert phases == ["probe", "lease", "start group 0", "ready", "confirm"]
    lease = next(step for step in plan.steps if step.phase == "lease")
    assert "removes the job if this machine stops renewing it for 20s" in lease.summary


def test_no_rm_launches_without_a_lease_and_foreground_holds_it(tmp_path: Path) -> None:
    t = fake()
    s, _seen = session(t, tmp_path)
    s.run(given(), Target(hosts="10.0.0.1"), keep_on_failure=True)
    assert actions(t) == []
    assert "readonly LEASE_TOKEN=''" in next(sc.text for _h, sc in t.scripts if sc.name == "launch")
    t2 = fake()
    s2, _seen = session(t2, tmp_path)
    result = s2.run(given(), Target(hosts="10.0.0.1"), hold=True)
    assert [a for _h, a in actions(t2)] == ["start"]  # no confirm: the lease stays held
    assert result.lease is not None and result.lease.beats["10.0.0.1"].state == "active"
    s2.release(result)
    assert result.lease is None


def test_the_lease_term_comes_from_the_environment_or_config_and_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    config = UserConfig(Path("/c/config.yaml"), {"lease_seconds": 45})
    assert lease_seconds(UserConfig(Path("/c/config.yaml"))) == 20
    assert lease_seconds(config) == 45
    monkeypatch.setenv("SPARKRUN_LEASE_SECONDS", "7")
    assert lease_seconds(config) == 7
    monkeypatch.setenv("SPARKRUN_LEASE_SECONDS", "1")
    with pytest.raises(ConfigError, match=r"\$SPARKRUN_LEASE_SECONDS: must be between 3 and 3600"):
        lease_seconds(config)
    monkeypatch.delenv("SPARKRUN_LEASE_SECONDS")
    with pytest.raises(ConfigError, match=r"/c/config.yaml: lease_seconds: expected a number"):
        lease_seconds(UserConfig(Path("/c/config.yaml"), {"lease_seconds": "soon"}))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def renewal(host: Host, state: str | None = "active", error: str | None = None, code: int = 0) -> Result:
    out = lease_answer(state) if state else ""
    return Result(host.address, "lease", code, out, "", 0.1, transport_error=error)


def test_a_host_silent_for_longer_than_the_lease_is_lost_and_named_as_the_cause() -> None:
    clock = Clock()
    hb = Heartbeat(FakeTransport(), Lease("job1", "t", 20), clock=clock)
    hb.beats = {h.address: _beat(hb, h) for h in (A, B)}
    hb.record(hb.beats["10.0.0.2"], renewal(B, None, "SSH connection timed out", 255))
    clock.now += 10
    assert hb.lost() == [] and [b.host for b in hb.troubled()] == [B]
    clock.now += 15
    assert [b.host for b in hb.lost()] == [B]
    failed = WorkloadError("10.0.0.1", "readiness port", "the engine exited (exited 1)", detail="NCCL error")
    error = hb.explain(failed)
    assert (error.host, error.step) == ("10.0.0.2", "lease")
    assert error.cause.startswith("no contact for 25s (SSH connection timed out)")
    assert error.detail is not None and error.detail.startswith("then: 10.0.0.1: readiness port: the engine exited")
    assert error.hint is not None and "watchdog removes the job's containers within 23s" in error.hint


def test_a_step_that_already_names_the_lost_host_keeps_its_words_and_gains_the_cleanup_hint() -> None:
    hb = Heartbeat(FakeTransport(), Lease("job1", "t", 20))
    hb.beats = {B.address: _beat(hb, B)}
    hb.record(hb.beats[B.address], renewal(B, None, "SSH connection lost (the host or its link went down)", 255))
    failed = HostError("10.0.0.2", "launch", "SSH connection lost (the host or its link went down)", hint="check")
    error = hb.explain(failed)
    assert error is failed and error.hint is not None
    assert error.hint.startswith("check; nothing to clean up by hand")


def test_renewals_cut_short_here_or_after_the_teardown_began_change_nothing() -> None:
    hb = Heartbeat(FakeTransport(), Lease("job1", "t", 20))
    beat = hb.beats.setdefault(A.address, _beat(hb, A))
    hb.record(beat, renewal(A, None, None, -15))  # killed on this machine (terminate_all): no verdict on the host
    assert beat.state == "active"
    hb.freeze()  # the undo revokes the leases: what hosts answer now is our own doing
    hb.record(beat, renewal(A, "revoked"))
    assert beat.state == "active" and hb.lost() == []


def test_an_expired_lease_ends_the_running_launch_at_once_and_is_the_reported_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARKRUN_LEASE_SECONDS", "3")  # renewals every second
    released = threading.Event()
    t = fake()
    renewals = {"n": 0}

    def lease(host: Host, script: Script) -> str:
        if "ACTION=renew" in script.text and host.address == "10.0.0.2":
            renewals["n"] += 1
            return lease_answer("expired")  # this machine slept: the watchdog on 10.0.0.2 acted
        return lease_answer()

    def readiness(host: Host, script: Script) -> str:  # a readiness wait that would take minutes
        released.wait(30)
        return events(("fail", "models the engine exited (missing)"))

    t.on("lease", lease)
    t.on("readiness", readiness)
    t.terminate_all = released.set  # type: ignore[method-assign]  # ends the running step, as the real one does
    s, seen = session(t, tmp_path)
    t0 = time.monotonic()
    with pytest.raises(HostError) as err:
        s.run(given(tensor_parallel=2), Target(hosts="10.0.0.1,10.0.0.2"))
    assert time.monotonic() - t0 < 10  # not the readiness budget
    assert (err.value.host, err.value.step) == ("10.0.0.2", "lease")
    assert "the launch lease expired" in err.value.cause and "then: 10.0.0.1: readiness models" in str(err.value.detail)
    assert renewals["n"] >= 1 and sorted(t.ran("stop")) == ["10.0.0.1", "10.0.0.2"]
    assert JobStore(tmp_path).all() == []
    assert not any(isinstance(e, Note) and "watchdog" in e.message for e in seen)  # the undo reached every host


def test_hosts_the_cleanup_cannot_reach_are_told_to_clean_up_by_themselves(tmp_path: Path) -> None:
    t = fake()
    t.on("launch", lambda h, s: events(("fail", "start the engine exited during start-up (exited 1)")))
    lost = "SSH connection timed out"
    t.on("stop", lambda h, s: Result(h.address, "stop", 255, "", "", 5.0, lost) if h == B else "")
    s, seen = session(t, tmp_path)
    with pytest.raises(WorkloadError):
        s.run(given(tensor_parallel=2), Target(hosts="10.0.0.1,10.0.0.2"))
    notes = [e.message for e in seen if isinstance(e, Note)]
    assert any(n.startswith("10.0.0.2: the host's lease watchdog removes the job's containers") for n in notes)


def test_an_interrupt_is_not_rewritten_and_stops_the_heartbeat(tmp_path: Path) -> None:
    t = fake()

    def interrupted(host: Host, script: Script) -> str:
        raise KeyboardInterrupt

    t.on("readiness", interrupted)
    s, _seen = session(t, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        s.run(given(), Target(hosts="10.0.0.1"))
    assert not any(th.name.startswith("lease ") for th in threading.enumerate())
    assert Interrupted.exit_code == 130


def _beat(hb: Heartbeat, host: Host) -> HostBeat:
    return HostBeat(host, hb.clock())
