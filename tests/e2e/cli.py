"""Running the real `sparkrun` CLI as a subprocess against the test cluster."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from testbed.harness import Testbed

IMAGE = "sparkrun-test/engine:latest"


def sparkrun(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sparkrun", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def ok(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    r = sparkrun(env, *args, timeout=timeout)
    assert r.returncode == 0, f"sparkrun {' '.join(args)} -> {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def run_json(env: dict[str, str], *args: str, timeout: float = 180) -> dict[str, Any]:
    r = ok(env, "run", "--json", "--no-follow", *args, timeout=timeout)
    data: dict[str, Any] = json.loads(r.stdout)
    return data


def status_json(env: dict[str, str], *args: str) -> dict[str, Any]:
    r = sparkrun(env, "status", "--json", *args)
    assert r.returncode in (0, 6), r.stderr
    data: dict[str, Any] = json.loads(r.stdout)
    return data


def sparkrun_containers(testbed: Testbed, hosts: list[str] | None = None) -> dict[str, list[str]]:
    """Names of sparkrun containers on each host (running or not)."""
    found = {}
    for host in hosts or testbed.hosts:
        names = [c["name"] for c in testbed.containers(host) if "sparkrun.job" in c["labels"]]
        if names:
            found[host] = names
    return found
