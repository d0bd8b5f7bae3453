"""The core loop on the test cluster: run -> ready -> status -> logs -> stop, and the ways it must fail cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.cli import IMAGE, ok, run_json, sparkrun, sparkrun_containers, status_json
from testbed.harness import Testbed

pytestmark = pytest.mark.e2e

UNREACHABLE = "10.213.0.201"  # inside the testbed subnet, held by no host


@pytest.fixture
def env(sparkrun_env: dict[str, str], testbed: Testbed) -> Iterator[dict[str, str]]:
    yield sparkrun_env
    sparkrun(sparkrun_env, "stop", "--all", "--cluster", "testbed")


def test_solo_run_is_ready_shows_in_status_and_logs_and_stop_removes_it(env: dict[str, str], testbed: Testbed) -> None:
    out = run_json(env, "qwen3-1.7b-vllm", "--cluster", "testbed", "--tp", "1", "--image", IMAGE)
    assert out["ready"] is True
    job, head = out["job"], out["hosts"][0]
    assert out["endpoint"] == f"http://{head}:8000/v1"
    # The endpoint really serves, from the control machine.
    models = json.loads(testbed.wait_http(f"{out['endpoint']}/models"))
    assert [m["id"] for m in models["data"]] == ["qwen3-1.7b"]

    status = status_json(env, "--cluster", "testbed")
    (entry,) = [j for j in status["jobs"] if j["job"] == job]
    assert entry["state"] == "running"
    assert [(c["host"], c["role"], c["state"]) for c in entry["containers"]] == [(head, "solo", "running")]

    # A second control machine with an empty config sees the same job (labels carry everything).
    other = dict(env, SPARKRUN_CONFIG_DIR=str(Path(env["HOME"]) / "other-config"))
    other_status = status_json(other, "-H", ",".join(testbed.hosts))
    assert [j["job"] for j in other_status["jobs"]] == [job]
    assert other_status["jobs"][0]["recipe"] == "qwen3-1.7b-vllm"

    logs = ok(env, "logs", job, "--cluster", "testbed", "-n", "50").stdout
    assert "Starting vLLM API server" in logs
    assert "POST /v1/chat/completions" in logs  # the readiness completion really happened

    stopped = ok(env, "stop", job, "--cluster", "testbed")
    assert "removed 1 container" in stopped.stderr
    assert sparkrun_containers(testbed) == {}
    again = ok(env, "stop", job, "--cluster", "testbed")  # idempotent
    assert "removed 0 container" in again.stderr


def test_run_ensure_reuses_an_identical_running_job(env: dict[str, str], testbed: Testbed) -> None:
    first = run_json(env, "qwen3-1.7b-vllm", "--cluster", "testbed", "--image", IMAGE)
    second = run_json(env, "qwen3-1.7b-vllm", "--cluster", "testbed", "--image", IMAGE, "--ensure")
    assert second["job"] == first["job"] and second["reused"] is True
    assert sum(len(v) for v in sparkrun_containers(testbed).values()) == 1


def test_extra_args_after_double_dash_reach_the_engine(env: dict[str, str], testbed: Testbed) -> None:
    out = run_json(env, "qwen3-1.7b-vllm", "--cluster", "testbed", "--image", IMAGE, "--", "--enforce-eager")
    assert out["ready"] is True  # the engine accepted the flag (the stand-in rejects unknown ones)
    head = out["hosts"][0]
    (name,) = sparkrun_containers(testbed)[head]
    inspect = json.loads(testbed.docker(head, "inspect", name).stdout)[0]
    assert inspect["Config"]["Cmd"][-1] == "--enforce-eager"


def test_an_engine_that_exits_during_startup_fails_the_run_with_its_log_and_leaves_nothing(
    env: dict[str, str], testbed: Testbed
) -> None:
    r = sparkrun(
        env, "run", "qwen3-1.7b-vllm", "--cluster", "testbed", "--image", IMAGE, "--no-follow",
        "-e", "STANDIN_FAIL=startup",
    )  # fmt: skip
    assert r.returncode == 5, r.stderr
    first_error = next(line for line in r.stderr.splitlines() if line.startswith("error:"))
    assert first_error.startswith(f"error: {testbed.hosts[0]}: ")
    assert "exited" in first_error
    assert "  | " in r.stderr  # the engine's last log lines
    assert not [line for line in r.stderr.splitlines() if "Traceback" in line and not line.startswith("  | ")]
    assert sparkrun_containers(testbed) == {}


def test_an_unreachable_host_is_one_line_within_the_connect_timeout(env: dict[str, str]) -> None:
    t0 = time.monotonic()
    r = sparkrun(env, "run", "qwen3-1.7b-vllm", "--cluster", "testbed", "-H", UNREACHABLE, "--image", IMAGE)
    elapsed = time.monotonic() - t0
    assert r.returncode == 4
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {UNREACHABLE}: probe: SSH "), r.stderr
    assert errors[0].endswith(("connection timed out", "no route to host")), r.stderr
    assert "hint: " in r.stderr
    assert elapsed < 5 + 5  # the testbed cluster's connect_timeout is 5 s; plus process start-up
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_during_readiness_removes_the_containers(
    sig: signal.Signals, env: dict[str, str], testbed: Testbed
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sparkrun", "run", "qwen3-1.7b-vllm", "--cluster", "testbed", "--image", IMAGE,
         "--no-follow", "-e", "STANDIN_STARTUP_SECONDS=60"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not sparkrun_containers(testbed):
        time.sleep(0.2)
    assert sparkrun_containers(testbed), "the container never started"
    time.sleep(1)  # now in the readiness wait
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert sparkrun_containers(testbed) == {}


def test_dry_run_against_unreachable_hosts_opens_no_connection(env: dict[str, str], tmp_path: Path) -> None:
    # A fake `ssh` first on PATH records any call; a dry-run must make none.
    marker = tmp_path / "ssh-called"
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "ssh").write_text(f"#!/bin/sh\ntouch {marker}\nexit 255\n")
    (fake / "ssh").chmod(0o755)
    dry_env = dict(env, PATH=f"{fake}{os.pathsep}{env['PATH']}")
    hosts = f"{UNREACHABLE},10.213.0.202"
    t0 = time.monotonic()
    r = ok(dry_env, "run", "qwen3-1.7b-vllm", "-H", hosts, "--tp", "2", "--dry-run")
    elapsed = time.monotonic() - t0
    assert not marker.exists()
    assert "docker run -d --name sparkrun_" in r.stdout
    assert elapsed < 2  # no connect timeout was waited for (the bench measures the real figure)
    plan = json.loads(ok(dry_env, "run", "qwen3-1.7b-vllm", "-H", hosts, "--tp", "2", "--dry-run", "--json").stdout)
    assert [r["host"] for r in plan["ranks"]] == [UNREACHABLE, "10.213.0.202"]
    assert not marker.exists()


def test_stop_with_a_host_down_stops_the_rest_and_exits_6(env: dict[str, str], testbed: Testbed) -> None:
    out = run_json(env, "qwen3-1.7b-vllm", "--cluster", "testbed", "--tp", "2", "--image", IMAGE)
    down = out["hosts"][1]
    testbed.link(down, up=False)
    try:
        r = sparkrun(env, "stop", out["job"], "--cluster", "testbed")
        assert r.returncode == 6, r.stderr
        assert down in r.stderr
        assert sparkrun_containers(testbed, [out["hosts"][0]]) == {}
    finally:
        testbed.link(down, up=True)
    ok(env, "stop", out["job"], "--cluster", "testbed")
    assert sparkrun_containers(testbed) == {}


def test_status_lists_an_unreachable_host_with_its_error_and_still_reports_the_others(env: dict[str, str]) -> None:
    r = sparkrun(env, "status", "--json", "--cluster", "testbed", "-H", f"10.213.0.11,{UNREACHABLE}")
    assert r.returncode == 6, r.stderr
    report = json.loads(r.stdout)
    by_host = {h["host"]: h for h in report["hosts"]}
    assert by_host["10.213.0.11"]["reachable"] is True
    assert by_host[UNREACHABLE]["reachable"] is False and by_host[UNREACHABLE]["error"].startswith("status: SSH ")
