"""The launch lease on one host, with the real lease.sh, lease_watchdog.sh, launch.sh (its lease part) and stop.sh run
by bash on this machine, and a stand-in `docker` CLI (fake_docker.py) holding the containers as lines of a file.

What is proven: a lease that is renewed keeps the job; one that is not renewed (the control machine died or was cut
off) loses every container of the job within the term plus the watchdog's poll, and the launch script still running
there is ended; a confirmed lease leaves the job alone; a stop revokes the lease; a newer launch of the same job takes
over without the old watchdog touching its containers; a dead docker daemon delays the sweep but does not stop it;
a port another job is starting or serving on is refused, naming that job."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sparkrun.hosts import Host
from sparkrun.shell import ParamValue, render_script, script_text
from sparkrun.transport.base import Result
from sparkrun.transport.local import LocalTransport

HERE = Host("localhost", local=True)
JOB = "0123456789ab"
TERM = 3  # seconds
FAKE_DOCKER = Path(__file__).with_name("fake_docker.py")


@dataclass
class FakeHost:
    home: Path
    docker_dir: Path
    transport: LocalTransport

    def add(self, job: str, name: str, *, port: int = 8000, state: str = "running", role: str = "solo") -> None:
        with (self.docker_dir / "containers").open("a") as fh:
            fh.write(f"id-{name} {job} {name} {port} {state} {role} recipe-{job[:4]}\n")

    def containers(self, job: str = JOB) -> list[str]:
        path = self.docker_dir / "containers"
        lines = path.read_text().splitlines() if path.exists() else []
        return [line.split()[2] for line in lines if line.split()[1] == job]

    def lease_dir(self, job: str = JOB) -> Path:
        return self.home / ".cache" / "sparkrun" / "lease" / job

    def state(self, job: str = JOB) -> str:
        try:
            return (self.lease_dir(job) / "state").read_text().strip()
        except FileNotFoundError:
            return "missing"

    def lease(self, action: str, token: str, job: str = JOB, **extra: ParamValue) -> Result:
        values: dict[str, ParamValue] = {"ACTION": action, "JOB_ID": job, "LEASE_TOKEN": token}
        if action == "start":
            values.update({"LEASE_SECONDS": str(TERM), "PORTS": ["8000"], "RECIPE": "qwen", "WATCHDOG": ""})
            values["WATCHDOG"] = script_text("lease_watchdog.sh")
        values.update(extra)
        return self.transport.run(HERE, render_script("lease", values), timeout=30)

    def stop(self, job: str = JOB) -> Result:
        return self.transport.run(HERE, render_script("stop", {"JOB_ID": job, "STOP_TIMEOUT": "1", "SETTLE": "0"}))

    def watchdog_pid(self, job: str = JOB) -> int:
        return int((self.lease_dir(job) / "watchdog.pid").read_text())

    def log(self, job: str = JOB) -> str:
        return (self.lease_dir(job) / "log").read_text()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until `check()` held; fails after `timeout`."""
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < timeout, f"{what}: not within {timeout}s"
        time.sleep(0.1)
    return time.monotonic() - t0


@pytest.fixture
def host(tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHost]:
    if shutil.which("setsid") is None:
        pytest.skip("setsid (util-linux) is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy(FAKE_DOCKER, bin_dir / "docker")
    (bin_dir / "docker").chmod(0o755)
    docker_dir = tmp_path / "docker"
    docker_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DOCKER", str(docker_dir))
    monkeypatch.setenv("SPARKRUN_LEASE_SETTLE", "1")
    fake = FakeHost(isolated_home, docker_dir, LocalTransport())
    yield fake
    for pid_file in (isolated_home / ".cache" / "sparkrun" / "lease").glob("*/watchdog.pid"):
        pid = int(pid_file.read_text())
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_renewed_lease_keeps_the_job_and_an_abandoned_one_loses_it_within_its_term(host: FakeHost) -> None:
    host.add(JOB, "sparkrun_x_solo")
    assert host.lease("start", "t1").ok
    watchdog = host.watchdog_pid()
    assert alive(watchdog)
    for _ in range(5):  # 5 s of renewals, longer than the term
        time.sleep(1)
        renewed = host.lease("renew", "t1")
        assert renewed.output.last("lease") is not None and renewed.output.last("lease").startswith("active")
    assert host.containers() == ["sparkrun_x_solo"]
    # The control machine goes silent: within the term + the watchdog's poll, the job is gone.
    took = wait_for(lambda: not host.containers(), TERM + 1 + 5, "containers removed")  # the term, a poll, slack
    assert took >= TERM - 1.5  # not before the term (the last renewal was at most ~1 s ago)
    assert host.state() == "expired"
    wait_for(lambda: not alive(watchdog), 15, "the watchdog exits after its sweep")
    assert "lease expired (no renewal for" in host.log()
    assert host.lease("renew", "t1").output.last("lease").startswith("expired")
    confirm = host.lease("confirm", "t1")
    assert not confirm.ok and "lease expired" in confirm.failure()[1]


def test_a_confirmed_lease_keeps_the_job_and_its_watchdog_stands_down(host: FakeHost) -> None:
    host.add(JOB, "sparkrun_x_solo")
    assert host.lease("start", "t1").ok
    watchdog = host.watchdog_pid()
    confirmed = host.lease("confirm", "t1")
    assert confirmed.ok and confirmed.output.last("lease").startswith("confirmed")
    wait_for(lambda: not alive(watchdog), 10, "the watchdog exits once confirmed")
    time.sleep(TERM + 1)  # past the term
    assert host.containers() == ["sparkrun_x_solo"]


def test_a_stop_revokes_the_lease_and_the_watchdog_ends_the_launch_still_running(host: FakeHost) -> None:
    assert host.lease("start", "t1").ok
    # A launch script still running on the host (e.g. pulling): its own process group, registered in the lease.
    launch = subprocess.Popen(["sleep", "300"], start_new_session=True)
    start_time = Path(f"/proc/{launch.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    (host.lease_dir() / "launch").write_text(f"{launch.pid} {start_time}\n")
    host.add(JOB, "sparkrun_x_solo")
    assert host.stop().ok
    assert launch.wait(timeout=15) == -signal.SIGTERM
    assert host.containers() == []
    wait_for(lambda: host.state() == "stopped", 15, "the watchdog marks the lease stopped")
    assert "the job was stopped" in host.log()


def test_a_newer_launch_of_the_job_takes_over_without_the_old_watchdog_touching_it(host: FakeHost) -> None:
    assert host.lease("start", "old").ok
    old_watchdog = host.watchdog_pid()
    assert host.lease("start", "new").ok
    host.add(JOB, "sparkrun_x_solo")
    wait_for(lambda: not alive(old_watchdog), 10, "the old watchdog stands down")
    assert "took over" in host.log()
    assert host.lease("renew", "old").output.last("lease").startswith("superseded")
    assert host.lease("renew", "new").output.last("lease").startswith("active")
    assert host.containers() == ["sparkrun_x_solo"]
    assert host.lease("confirm", "new").ok


def test_the_watchdog_waits_out_a_dead_docker_daemon_and_then_removes_the_job(host: FakeHost) -> None:
    host.add(JOB, "sparkrun_x_solo")
    (host.docker_dir / "down").touch()
    assert not host.lease("start", "t1").ok  # nothing is leased (or started) without a docker daemon
    (host.docker_dir / "down").unlink()
    assert host.lease("start", "t1").ok
    (host.docker_dir / "down").touch()
    time.sleep(TERM + 2)  # the lease expires while the daemon is down
    assert host.state() == "expired" and host.containers() == ["sparkrun_x_solo"]
    (host.docker_dir / "down").unlink()
    wait_for(lambda: not host.containers(), 10, "removed once the daemon answers")
    assert "does not answer" in host.log()


def test_a_port_another_job_is_starting_or_serving_on_is_refused_naming_it(host: FakeHost) -> None:
    other = "fedcba987654"
    assert host.lease("start", "t1", job=other).ok
    clash = host.lease("start", "t2")
    assert not clash.ok
    assert clash.failure() == ("lease", f"port 8000 is taken by job {other} (qwen, starting)")
    assert host.lease("confirm", "t1", job=other).ok
    host.add(other, "sparkrun_other_solo", port=8000)
    clash = host.lease("start", "t2")
    assert clash.failure() == ("lease", f"port 8000 is taken by job {other} (recipe-fedc, running)")
    assert host.lease("start", "t2", PORTS=["8001"]).ok  # another port is fine
    host.add("aaaaaaaaaaaa", "sparkrun_w_worker1", port=8002, role="worker")
    assert host.lease("start", "t3", job="bbbbbbbbbbbb", PORTS=["8002"]).ok  # a worker does not hold the API port


def test_launch_refuses_to_start_on_a_lease_that_has_ended(host: FakeHost) -> None:
    assert host.lease("start", "t1").ok
    assert host.stop().ok
    values: dict[str, ParamValue] = {"JOB_ID": JOB, "LEASE_TOKEN": "t1", "CONTAINER": "c", "DOCKER_ARGV": ["true"]}
    result = host.transport.run(HERE, render_script("launch", values))
    assert result.failure() == ("lease", "the launch lease on this host ended before the start (revoked)")
    calls = (host.docker_dir / "calls").read_text().splitlines()
    assert not any(c.startswith(("run", "pull", "container")) for c in calls)


def test_a_launch_stuck_in_a_pull_is_ended_by_the_watchdog_when_its_lease_is_revoked(
    host: FakeHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PULL_SECONDS", "300")
    assert host.lease("start", "t1").ok
    values: dict[str, ParamValue] = {"JOB_ID": JOB, "LEASE_TOKEN": "t1", "CONTAINER": "c", "IMAGE": "img"}
    values.update({"DOCKER_ARGV": ["docker", "run", "img"], "IMAGE_SOURCE": "", "PULL": "missing"})
    script = render_script("launch", values)
    results: list[Result] = []
    launch = threading.Thread(target=lambda: results.append(host.transport.run(HERE, script, timeout=120)))
    launch.start()
    wait_for((host.lease_dir() / "launch").exists, 20, "the launch registers its process group")
    wait_for(lambda: "pull" in (host.docker_dir / "calls").read_text(), 20, "the launch is pulling")
    assert host.stop().ok
    launch.join(timeout=20)
    assert not launch.is_alive() and not results[0].ok
    calls = (host.docker_dir / "calls").read_text().splitlines()
    assert not any(c.startswith("run") for c in calls)
