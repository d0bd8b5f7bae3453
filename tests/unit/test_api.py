"""The core API without hosts: a whole `run` (probe -> start groups -> readiness -> record) against the FakeTransport,
and the commands `run` prints (`logs JOB`, `stop JOB`, a bare `status`) finding the job's hosts from its record."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparkrun.api import RecipeInput, Session, Target
from sparkrun.core.events import Event, Note
from sparkrun.errors import InputError, WorkloadError
from sparkrun.hosts import Host
from sparkrun.jobs.records import JobStore
from sparkrun.shell import Script
from sparkrun.transport.fake import FakeTransport, events

IMAGE = "sparkrun-test/engine:latest"


def probe(host: Host, script: Script) -> str:
    return events(("docker", "ok 27.0"), ("home", "/home/ops"), ("curl", "yes"), ("image", f"{IMAGE} sha256:1"))


def ready(host: Host, script: Script) -> str:
    return events(
        ("phase", "port"),
        ("timing", "port 0.1"),
        ("models", "qwen3-1.7b,other"),
        ("served", "qwen3-1.7b"),
        ("ready", "0.5"),
    )


def fake() -> FakeTransport:
    return FakeTransport({"probe": probe, "readiness": ready, "status": events(("docker", "ok"), ("containers", "[]"))})


def session(transport: FakeTransport, tmp_path: Path) -> tuple[Session, list[Event]]:
    seen: list[Event] = []
    return Session(emit=seen.append, transport=transport, store=JobStore(tmp_path)), seen


def given(**values: object) -> RecipeInput:
    return RecipeInput("qwen3-1.7b-vllm", values=values, image=IMAGE)


def test_a_run_probes_starts_groups_in_order_waits_and_records(tmp_path: Path) -> None:
    t = fake()
    s, _seen = session(t, tmp_path)
    result = s.run(given(tensor_parallel=2), Target(hosts="10.0.0.1,10.0.0.2"))
    names = [(h.address, sc.name) for h, sc in t.scripts]
    assert names == [
        ("10.0.0.1", "probe"),
        ("10.0.0.2", "probe"),
        ("10.0.0.1", "lease"),
        ("10.0.0.2", "lease"),
        ("10.0.0.1", "launch"),
        ("10.0.0.2", "launch"),
        ("10.0.0.1", "readiness"),
        ("10.0.0.1", "lease"),
        ("10.0.0.2", "lease"),
    ]
    assert result.ready and result.served_models == ["qwen3-1.7b", "other"]
    record = JobStore(tmp_path).load(result.job.job)
    assert record is not None and record["hosts"] == ["10.0.0.1", "10.0.0.2"]
    # the probed home fills the cache path; the dry-run showed ~/
    launch = next(sc for h, sc in t.scripts if sc.name == "launch")
    assert "/home/ops/.cache/huggingface:/cache/huggingface" in launch.text


def test_the_dry_run_and_the_run_agree_on_the_job_id(tmp_path: Path) -> None:
    t = fake()
    s, _seen = session(t, tmp_path)
    plan = s.plan_run(given(), Target(hosts="10.0.0.1"))
    assert t.scripts == []  # a dry-run opens no connection
    result = s.run(given(), Target(hosts="10.0.0.1"))
    assert plan.job.job == result.job.job


def test_a_failed_start_removes_the_job_everywhere_and_names_the_engine(tmp_path: Path) -> None:
    t = fake()
    t.on(
        "launch",
        lambda h, sc: (
            events(("fail", "start the engine exited during start-up (exited 1)"), blocks={"log": "Traceback: boom"})
            if h.address == "10.0.0.2"
            else ""
        ),
    )
    s, _seen = session(t, tmp_path)
    with pytest.raises(WorkloadError) as err:
        s.run(given(tensor_parallel=2), Target(hosts="10.0.0.1,10.0.0.2"))
    assert str(err.value).startswith("10.0.0.2: start:")
    assert err.value.detail == "Traceback: boom"
    assert sorted(t.ran("stop")) == ["10.0.0.1", "10.0.0.2"]
    assert JobStore(tmp_path).all() == []


def test_ensure_reuses_a_job_whose_containers_all_run(tmp_path: Path) -> None:
    t = fake()
    s, seen = session(t, tmp_path)
    job = s.plan_run(given(), Target(hosts="10.0.0.1")).job
    name = job.ranks[0].container.name
    t.on("probe", lambda h, sc: probe(h, sc) + events(("container", f"{name} running")))
    result = s.run(given(), Target(hosts="10.0.0.1"), ensure=True)
    assert result.reused and t.ran("launch") == []
    assert any(isinstance(e, Note) and "reusing" in e.message for e in seen)


def test_the_printed_logs_and_stop_commands_find_the_hosts_from_the_record(tmp_path: Path) -> None:
    t = fake()
    s, _seen = session(t, tmp_path)
    job = s.run(given(), Target(hosts="10.0.0.7")).job.job
    assert [h.address for h in s.select_for_job(Target(), job).hosts] == ["10.0.0.7"]
    result = s.stop(Target(), job)
    assert t.ran("stop") == ["10.0.0.7"] and result.job == job
    assert JobStore(tmp_path).load(job) is None


def test_a_bare_status_asks_the_hosts_of_recorded_jobs(tmp_path: Path) -> None:
    t = fake()
    s, _seen = session(t, tmp_path)
    s.run(given(), Target(hosts="10.0.0.7"))
    report = s.status(Target())
    assert [h["host"] for h in report.to_json()["hosts"]] == ["10.0.0.7"]
    assert "recorded jobs" in report.to_json()["source"]


def test_without_hosts_or_records_the_error_says_how_to_give_hosts(tmp_path: Path) -> None:
    s, _seen = session(fake(), tmp_path)
    with pytest.raises(InputError) as err:
        s.status(Target())
    assert "no hosts to act on" in str(err.value)


def test_a_dry_run_without_hosts_plans_for_placeholders(tmp_path: Path) -> None:
    s, _seen = session(fake(), tmp_path)
    plan = s.plan_run(given(tensor_parallel=2), Target())
    assert list(plan.job.topology.hosts) == ["<head>", "<worker1>"]
