"""The test cluster for the corpus run: take turns with other test sessions, bring it up, look at its hosts' docker
directly (independently of sparkrun), and take it down again when this run brought it up.

Turn-taking is the e2e fixtures' (tests/e2e/conftest.py): `$TB_STATE/sessions.lock` exclusive for the whole run, and
`$TB_STATE/users.lock` shared, so `scripts/testbed.sh down` (without --force) refuses while the run uses the cluster.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[2]
TESTBED_SH = REPO / "scripts" / "testbed.sh"
NET = "10.213.0"


class ClusterError(Exception):
    """The test cluster could not be used (one line)."""


@dataclass
class Cluster:
    state_dir: Path
    hosts: list[str]
    owned: bool  # this run brought it up (and takes it down)
    up_seconds: float = 0.0  # how long `testbed.sh up` took (after the wait for the locks)

    def docker_socket(self, host: str) -> Path:
        index = int(host.rsplit(".", 1)[-1]) - 10
        return self.state_dir / f"h{index}" / "run" / "docker.sock"

    def job_containers(self) -> list[str]:
        """`host: name (state)` of every container with a sparkrun job label, asked of each host's dockerd."""
        found: list[str] = []
        for host in self.hosts:
            env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_CONTEXT", "DOCKER_CONFIG")}
            env["DOCKER_HOST"] = f"unix://{self.docker_socket(host)}"
            argv = ["docker", "ps", "-a", "--filter", "label=sparkrun.job", "--format", "{{.Names}} ({{.State}})"]
            r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
            if r.returncode != 0:
                found.append(f"{host}: docker ps failed: {r.stderr.strip()[-200:]}")
            found += [f"{host}: {line}" for line in r.stdout.splitlines() if line.strip()]
        return found

    def remove_job_containers(self) -> None:
        """Last resort after a run left containers behind, so the next recipe starts clean."""
        for host in self.hosts:
            env = {**os.environ, "DOCKER_HOST": f"unix://{self.docker_socket(host)}"}
            ids = subprocess.run(
                ["docker", "ps", "-aq", "--filter", "label=sparkrun.job"],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
                check=False,
            ).stdout.split()
            if ids:
                subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, env=env, timeout=120, check=False)


def testbed(state_dir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TB_STATE": str(state_dir)}
    return subprocess.run(
        ["bash", str(TESTBED_SH), *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def _lock(path: Path, how: int, waiting_for: str, wait_s: float) -> IO[bytes]:
    handle: IO[bytes] = open(path, "ab")  # noqa: SIM115 - held for the whole run
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        try:
            fcntl.flock(handle, how | fcntl.LOCK_NB)
            return handle
        except OSError:
            if time.monotonic() > deadline:
                handle.close()
                raise ClusterError(f"gave up after {wait_s:.0f}s waiting: {waiting_for} ({path})") from None
            if not told:
                print(f"[corpus-e2e] waiting: {waiting_for} ({path})", file=sys.stderr, flush=True)
                told = True
            time.sleep(1)


@contextmanager
def using_test_cluster(state_dir: Path, size: int, config_dir: Path, wait_s: float) -> Iterator[Cluster]:
    """The cluster, up with `size` hosts and written as cluster `testbed` into `config_dir`, for the whole block."""
    if os.geteuid() != 0:
        raise ClusterError("the test cluster needs root (network namespaces, dockerd): run as root")
    state_dir.mkdir(parents=True, exist_ok=True)
    session = _lock(state_dir / "sessions.lock", fcntl.LOCK_EX, "another test session is using the testbed", wait_s)
    users = _lock(state_dir / "users.lock", fcntl.LOCK_SH, "a `testbed.sh down` is running", wait_s)
    cluster: Cluster | None = None
    try:
        was_up = testbed(state_dir, "running").stdout.split()
        began = time.monotonic()
        up = testbed(state_dir, "up", str(size))
        if up.returncode != 0:
            raise ClusterError(f"scripts/testbed.sh up {size} failed (exit {up.returncode}): {up.stderr[-2000:]}")
        hosts = (state_dir / "hosts").read_text().split()[:size]
        cluster = Cluster(state_dir, hosts, owned=not was_up, up_seconds=time.monotonic() - began)
        written = testbed(state_dir, "cluster-file", str(config_dir))
        if written.returncode != 0:
            raise ClusterError(f"scripts/testbed.sh cluster-file failed: {written.stderr.strip()[-500:]}")
        yield cluster
    finally:
        if cluster is not None and cluster.owned:
            _take_down(state_dir)
        users.close()
        session.close()


def _take_down(state_dir: Path) -> None:
    down = testbed(state_dir, "down", "--force", timeout=300)  # --force: the users.lock it would wait for is ours
    left = testbed(state_dir, "leftovers", timeout=120)
    if down.returncode != 0 or left.returncode != 0:
        raise ClusterError(
            f"scripts/testbed.sh down left things behind (exit {down.returncode}): "
            f"{(down.stderr + left.stdout).strip()[-2000:]}"
        )
