"""Faults before anything starts (the probe), while a `--foreground` run follows the logs, during a copy into a
container (a full disk), and `stop`/`status` with a host down. Each case: a one-line cause, a documented exit code,
no sparkrun container left once the host is back (within the lease bound, nothing run by hand)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.cli import IMAGE, ok, run_json, sparkrun, status_json
from e2e.faultkit import (
    SIGINT,
    SIGKILL,
    SIGTERM,
    Dockerd,
    GoneWatch,
    Run,
    Sshd,
    error_line,
    job_containers,
    left_everywhere,
    restore,
    solo_args,
    stop_all,
    tracebacks,
)
from reliability_report import CaseLog
from testbed.harness import Testbed

pytestmark = pytest.mark.e2e

LEASE = 8

FOLLOW = {
    "link": ("link cut while following (--foreground)", "exit 4 naming the host; the job ends with the command"),
    "sigkill": ("SIGKILL while following (--foreground)", "the held lease runs out: the host removes the job"),
    "sigint": ("Ctrl-C while following (--foreground)", "the job is stopped on every host, exit 0"),
    "sigterm": ("SIGTERM while following (--foreground)", "like Ctrl-C: the job is stopped, exit 0"),
}


@pytest.fixture
def env(sparkrun_env: dict[str, str], testbed: Testbed) -> Iterator[dict[str, str]]:
    yield dict(sparkrun_env, SPARKRUN_LEASE_SECONDS=str(LEASE))
    restore(testbed, testbed.hosts)
    stop_all(sparkrun_env)


def test_hosts_down_sshd_dead_or_dockerd_stopped_before_the_start(
    env: dict[str, str], testbed: Testbed, reliability: CaseLog
) -> None:
    h1, h2, h3 = testbed.hosts[:3]
    sshd, dockerd = Sshd(testbed, h2), Dockerd(testbed, h3)
    testbed.link(h1, up=False)
    try:
        sshd.kill()
        dockerd.stop()
        runs = {name: Run(env, solo_args(host)) for name, host in (("link", h1), ("sshd", h2), ("dockerd", h3))}
        codes = {name: run.finish(60) for name, run in runs.items()}
    finally:
        testbed.link(h1, up=True)
        if sshd.argv:
            sshd.start()
        if dockerd.argv:
            dockerd.start()
    expected = {
        "link": (h1, "SSH connection", "host down before the start (its link cut)"),
        "sshd": (h2, "SSH connection refused", "sshd dead before the start"),
        "dockerd": (h3, "docker unreachable", "dockerd stopped before the start"),
    }
    for name, (host, words, title) in expected.items():
        line = error_line(runs[name].stderr)
        reliability.case(
            title,
            suite="faults",
            phase="probe",
            fault=f"{name} on {host}",
            checked="exit 4, one line naming the host, the probe step and the cause; nothing started",
            exit_code=codes[name],
            cause=line,
            containers_left=len(job_containers(testbed, host)),
            tracebacks=tracebacks(runs[name].stderr),
        )
        assert codes[name] == 4, runs[name].stderr
        assert line.startswith(f"error: {host}: probe: ") and words in line, runs[name].stderr
        assert name != "link" or line.endswith(("timed out", "no route to host")), line
        assert "hint: " in runs[name].stderr
    assert left_everywhere(testbed) == 0


def test_faults_in_the_middle_of_the_probe(env: dict[str, str], testbed: Testbed, reliability: CaseLog) -> None:
    """The probe hangs on a frozen dockerd; then the link is cut, or the CLI is killed or interrupted."""
    h1, h2, h3 = testbed.hosts[:3]
    daemons = [Dockerd(testbed, h) for h in (h1, h2, h3)]
    for d in daemons:
        d.freeze()
    try:
        runs = {name: Run(env, solo_args(host)) for name, host in (("link", h1), ("sigkill", h2), ("sigint", h3))}
        time.sleep(3)  # the probes have connected and wait for `docker version`
        testbed.link(h1, up=False)
        runs["sigkill"].signal(SIGKILL)
        runs["sigint"].signal(SIGINT)
        codes = {name: run.finish(90) for name, run in runs.items()}
    finally:
        testbed.link(h1, up=True)
        for d in daemons:
            d.thaw()
    cases = {
        "link": (h1, "link cut during the probe", "exit 4 naming the host, the probe step and the lost connection"),
        "sigkill": (h2, "SIGKILL during the probe", "nothing was started: nothing to remove"),
        "sigint": (h3, "Ctrl-C during the probe", "exit 130; nothing was started"),
    }
    for name, (host, title, checked) in cases.items():
        reliability.case(
            title,
            suite="faults",
            phase="probe",
            fault=f"{name} while the probe waits on a frozen dockerd ({host})",
            checked=checked,
            exit_code=codes[name],
            cause=error_line(runs[name].stderr),
            containers_left=len(job_containers(testbed, host)),
            tracebacks=tracebacks(runs[name].stderr),
        )
    line = error_line(runs["link"].stderr)
    assert codes["link"] == 4 and line.startswith(f"error: {h1}: probe: SSH connection lost"), runs["link"].stderr
    assert codes["sigkill"] == -SIGKILL and codes["sigint"] == 130
    assert left_everywhere(testbed) == 0


def test_faults_while_a_foreground_run_follows_the_logs(
    env: dict[str, str], testbed: Testbed, reliability: CaseLog
) -> None:
    h1, h2, h3, h4 = testbed.hosts[:4]
    runs = {
        name: Run(env, solo_args(host, "--foreground")) for name, host in zip(FOLLOW, (h1, h2, h3, h4), strict=True)
    }
    for run in runs.values():
        run.wait_for("Application startup complete", timeout=120)  # the engine's own log, followed
    try:
        testbed.link(h1, up=False)
        cut = GoneWatch(testbed, h1)
        runs["sigkill"].signal(SIGKILL)
        killed = GoneWatch(testbed, h2)
        runs["sigint"].signal(SIGINT)
        runs["sigterm"].signal(SIGTERM)
        seconds = {"link": cut.seconds(LEASE + 20), "sigkill": killed.seconds(LEASE + 20)}
        codes = {name: run.finish(120) for name, run in runs.items()}
    finally:
        testbed.link(h1, up=True)
    for (name, (title, checked)), host in zip(FOLLOW.items(), (h1, h2, h3, h4), strict=True):
        reliability.case(
            title,
            suite="faults",
            phase="follow (--foreground)",
            fault=name,
            checked=checked,
            exit_code=codes[name],
            cause=error_line(runs[name].stderr),
            containers_left=len(job_containers(testbed, host)),
            tracebacks=tracebacks(runs[name].stderr),
            seconds=seconds.get(name),
            lease_seconds=LEASE if name in seconds else None,
        )
    assert codes["link"] == 4 and error_line(runs["link"].stderr).startswith(f"error: {h1}: "), runs["link"].stderr
    assert codes["sigkill"] == -SIGKILL
    assert codes["sigint"] == 0 and codes["sigterm"] == 0, (runs["sigint"].stderr, runs["sigterm"].stderr)
    assert "stopping job" in runs["sigterm"].stderr
    assert left_everywhere(testbed) == 0
    assert tracebacks(*(r.stderr for r in runs.values())) == 0


def test_a_full_disk_during_a_copy_into_the_container_fails_cleanly(
    env: dict[str, str], testbed: Testbed, tmp_path: Path, reliability: CaseLog
) -> None:
    host = testbed.hosts[0]
    mod = tmp_path / "mods" / "big"
    mod.mkdir(parents=True)
    (mod / "run.sh").write_text("#!/bin/bash\ntrue\n")
    (mod / "weights.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    recipe = tmp_path / "copy-test.yaml"
    bundled = Path(__file__).resolve().parents[2] / "recipes" / "qwen3-1.7b-vllm.yaml"
    recipe.write_text(bundled.read_text() + "mods:\n  - mods/big\n")
    small = "/tmp/sparkrun-small-disk"
    testbed.exec(host, f"mkdir -p {small} && mount -t tmpfs -o size=256k tmpfs {small}")
    try:
        ok(env, "cluster", "update", "testbed", "--docker-arg=-v", f"--docker-arg={small}:/workspace/mods")
        r = sparkrun(env, "run", str(recipe), "--cluster", "testbed", "-H", host, "--image", IMAGE, "--no-follow")
    finally:
        testbed.exec(host, f"umount {small}", check=False)
    line = error_line(r.stderr)
    reliability.case(
        "disk full while copying a mod into the container",
        suite="faults",
        phase="start: head (copy)",
        fault="the copy's target filesystem is a 256 KiB tmpfs; the mod is 2 MiB",
        checked="exit 4 naming the host, the copy step and the full disk; the job removed",
        exit_code=r.returncode,
        cause=line,
        containers_left=len(job_containers(testbed, host)),
        tracebacks=tracebacks(r.stderr),
    )
    assert r.returncode == 4, r.stderr
    assert line.startswith(f"error: {host}: copy: ") and "no space left" in line.lower(), r.stderr
    assert left_everywhere(testbed) == 0


def test_stop_and_status_with_a_host_down_act_on_the_rest_and_a_later_stop_finishes(
    env: dict[str, str], testbed: Testbed, reliability: CaseLog
) -> None:
    out = run_json(env, "qwen3-1.7b-vllm", "--cluster", "testbed", "--tp", "2", "--image", IMAGE)
    head, worker = out["hosts"]
    testbed.link(worker, up=False)
    try:
        status = sparkrun(env, "status", "--json", "--cluster", "testbed")
        stopped = sparkrun(env, "stop", out["job"], "--cluster", "testbed")
        left_on_head = job_containers(testbed, head)
    finally:
        testbed.link(worker, up=True)
    time.sleep(LEASE + 4)  # a confirmed job's containers are not the watchdog's business: they must still be there
    still = job_containers(testbed, worker)
    later = sparkrun(env, "stop", out["job"], "--cluster", "testbed")
    reliability.case(
        "stop and status with a host down, then a later stop",
        suite="faults",
        phase="after the launch",
        fault=f"link of {worker} down during `status` and `stop`",
        checked="status and stop act on the rest and exit 6 naming the host; the later stop finishes it (exit 0)",
        exit_code=stopped.returncode,
        cause=error_line(stopped.stderr),
        containers_left=left_everywhere(testbed),
        tracebacks=tracebacks(status.stderr, stopped.stderr, later.stderr),
    )
    assert status.returncode == 6 and stopped.returncode == 6, (status.stderr, stopped.stderr)
    unreachable = [h for h in json.loads(status.stdout)["hosts"] if not h["reachable"]]
    assert [h["host"] for h in unreachable] == [worker]
    assert worker in stopped.stderr and left_on_head == []
    assert still, "a confirmed job must survive a cut (only failed launches are the watchdog's)"
    assert later.returncode == 0, later.stderr
    assert left_everywhere(testbed) == 0
    assert status_json(env, "--cluster", "testbed")["total_containers"] == 0
