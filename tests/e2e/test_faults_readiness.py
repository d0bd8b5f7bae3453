"""Faults while a launch waits for readiness, four at once (one solo job per host): the host's link cut, the CLI
killed with SIGKILL, the engine's container killed, the host's dockerd stopped. Each ends with a one-line cause and a
documented exit code (SIGKILL: none can be printed), and with no sparkrun container on any host once the host is
back, within the lease bound, without any command run by hand. The link cut runs with the default lease (20 s): its
cut -> 0 containers time is the lease bound the report states."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from e2e.cli import sparkrun, status_json
from e2e.faultkit import (
    SIGKILL,
    Dockerd,
    GoneWatch,
    Run,
    error_line,
    job_containers,
    kill_container,
    left_everywhere,
    restore,
    solo_args,
    stop_all,
    tracebacks,
)
from reliability_report import CaseLog
from testbed.harness import Testbed

pytestmark = pytest.mark.e2e

LEASE = 8  # seconds, for the cases that do not measure the default
DEFAULT_LEASE = 20
HOLD = ("-e", "STANDIN_STARTUP_SECONDS=600")  # the engine takes 10 minutes to load: readiness waits


@pytest.fixture
def env(sparkrun_env: dict[str, str], testbed: Testbed) -> Iterator[dict[str, str]]:
    yield sparkrun_env
    restore(testbed, testbed.hosts)
    stop_all(sparkrun_env)


def test_faults_during_readiness_end_with_a_cause_and_nothing_left(
    env: dict[str, str], testbed: Testbed, reliability: CaseLog
) -> None:
    h1, h2, h3, h4 = testbed.hosts[:4]
    short = dict(env, SPARKRUN_LEASE_SECONDS=str(LEASE))
    runs = {
        "link": Run(env, solo_args(h1, *HOLD)),
        "sigkill": Run(short, solo_args(h2, *HOLD)),
        "container": Run(short, solo_args(h3, *HOLD)),
        "dockerd": Run(short, solo_args(h4, *HOLD)),
    }
    for run in runs.values():
        run.wait_for("waiting for")
    dockerd = Dockerd(testbed, h4)
    try:
        testbed.link(h1, up=False)
        link = GoneWatch(testbed, h1)
        runs["sigkill"].signal(SIGKILL)
        sigkill = GoneWatch(testbed, h2)
        kill_container(testbed, h3)
        dockerd.stop()
        stopped = time.monotonic()
        link_gone = link.seconds(DEFAULT_LEASE + 15)
        kill_gone = sigkill.seconds(LEASE + 15)
        codes = {name: run.finish(120) for name, run in runs.items()}
        # dockerd comes back after the lease ran out on h4: its watchdog was waiting for the daemon.
        time.sleep(max(0.0, LEASE + 2 - (time.monotonic() - stopped)))
        dockerd.start()
        dockerd_gone = GoneWatch(testbed, h4).seconds(20)
    finally:
        testbed.link(h1, up=True)
        if dockerd.argv and testbed.exec(h4, "docker version", check=False).returncode != 0:
            dockerd.start()
    left = left_everywhere(testbed)
    errors = {name: error_line(run.stderr) for name, run in runs.items()}
    traces = {name: tracebacks(run.stderr, run.stdout) for name, run in runs.items()}

    reliability.case(
        "link cut while waiting for readiness",
        suite="faults",
        phase="readiness",
        fault=f"link of {h1} down (default {DEFAULT_LEASE} s lease)",
        checked="exit 4, one line naming the host and SSH; the host removes the job itself once cut off",
        exit_code=codes["link"],
        cause=errors["link"],
        containers_left=len(job_containers(testbed, h1)),
        tracebacks=traces["link"],
        seconds=link_gone,
        lease_seconds=DEFAULT_LEASE,
    )
    reliability.case(
        "CLI killed (SIGKILL) while waiting for readiness",
        suite="faults",
        phase="readiness",
        fault="kill -9 of sparkrun run",
        checked="no cleanup from the dead CLI: the host's watchdog removes the job when the lease runs out",
        exit_code=codes["sigkill"],
        containers_left=len(job_containers(testbed, h2)),
        tracebacks=traces["sigkill"],
        seconds=kill_gone,
        lease_seconds=LEASE,
    )
    reliability.case(
        "engine container killed while waiting for readiness",
        suite="faults",
        phase="readiness",
        fault=f"docker kill on {h3}",
        checked="exit 5 naming the host and the readiness step, the engine's log, undo on every host",
        exit_code=codes["container"],
        cause=errors["container"],
        containers_left=len(job_containers(testbed, h3)),
        tracebacks=traces["container"],
    )
    reliability.case(
        "dockerd stopped while waiting for readiness",
        suite="faults",
        phase="readiness",
        fault=f"dockerd on {h4} stopped, started again after the lease ran out",
        checked="exit 4 naming docker; the watchdog waits for the daemon, then removes the job",
        exit_code=codes["dockerd"],
        cause=errors["dockerd"],
        containers_left=len(job_containers(testbed, h4)),
        tracebacks=traces["dockerd"],
        seconds=dockerd_gone,
    )

    assert left == 0
    assert sum(traces.values()) == 0, {n: r.stderr for n, r in runs.items()}
    assert codes["sigkill"] == -SIGKILL
    assert codes["link"] == 4 and errors["link"].startswith(f"error: {h1}: "), runs["link"].stderr
    assert "SSH" in errors["link"] or ": lease: " in errors["link"], runs["link"].stderr
    assert codes["container"] == 5, runs["container"].stderr
    assert errors["container"].startswith(f"error: {h3}: readiness"), runs["container"].stderr
    assert codes["dockerd"] in (4, 5) and errors["dockerd"].startswith(f"error: {h4}: "), runs["dockerd"].stderr
    assert link_gone <= DEFAULT_LEASE + 5 + 3  # the lease, the renewal interval, the watchdog's poll and `docker rm`
    assert kill_gone <= LEASE + LEASE / 5 + 3
    status = status_json(env, "--cluster", "testbed")
    assert status["total_containers"] == 0
    assert sparkrun(env, "status", "--cluster", "testbed").returncode == 0
