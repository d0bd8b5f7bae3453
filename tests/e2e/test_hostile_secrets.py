"""Secrets on the test cluster: during a real launch (with -vv), no process on the host or on this machine has a
secret in its argv (`ps` sampled all along), and after it no output (text, --json, -vv trace), job record, `status`
or `logs` shows one; the container gets each one in its environment (that is where it is needed)."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.cli import IMAGE, ok, sparkrun
from e2e.faultkit import Run, job_containers, stop_all, tracebacks
from reliability_report import CaseLog
from testbed.harness import Testbed

pytestmark = pytest.mark.e2e

SECRETS = {"HF_TOKEN": "hf_e2eSECRET0001", "MY_API_KEY": "e2eSECRET0002", "DB_PASSWORD": "e2eSECRET0003"}


@pytest.fixture
def env(sparkrun_env: dict[str, str], testbed: Testbed) -> Iterator[dict[str, str]]:
    yield dict(sparkrun_env, HF_TOKEN=SECRETS["HF_TOKEN"])
    stop_all(sparkrun_env)


class PsSampler:
    """`ps -eo args` on a host (inside its PID namespace) and on this machine, every few tenths of a second."""

    def __init__(self, testbed: Testbed, host: str) -> None:
        self.testbed, self.host = testbed, host
        self.samples = 0
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            here = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False).stdout
            there = self.testbed.exec(self.host, "ps -eo args", check=False).stdout
            self.seen += [line for line in (here + there).splitlines() if any(v in line for v in SECRETS.values())]
            self.samples += 1
            self._stop.wait(0.2)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def test_no_secret_in_any_argv_output_record_or_log(
    env: dict[str, str], testbed: Testbed, reliability: CaseLog
) -> None:
    host = testbed.hosts[0]
    ok(env, "cluster", "update", "testbed", "-e", f"DB_PASSWORD={SECRETS['DB_PASSWORD']}")
    base = ("qwen3-1.7b-vllm", "--cluster", "testbed", "-H", host, "--image", IMAGE, "--no-follow", "--json")
    args = (*base, "-e", f"MY_API_KEY={SECRETS['MY_API_KEY']}", "-e", "STANDIN_STARTUP_SECONDS=4")
    sampler = PsSampler(testbed, host)
    try:
        run = Run(env, args, verbose=("-vv",))
        code = run.finish(240)
    finally:
        sampler.stop()
    result = json.loads(run.stdout)
    dry = sparkrun(env, "run", *args, "--dry-run", "--json")
    status = sparkrun(env, "status", "--json", "--cluster", "testbed")
    logs = sparkrun(env, "logs", result["job"], "--cluster", "testbed", "-n", "all")
    records = [p.read_text() for p in Path(env["SPARKRUN_CACHE_DIR"]).rglob("*.json")]
    outputs = [run.stdout, run.stderr, dry.stdout, dry.stderr, status.stdout, logs.stdout, logs.stderr, *records]
    leaked = sorted({k for k, v in SECRETS.items() if any(v in text for text in outputs)} | set(sampler.seen))
    (name,) = job_containers(testbed, host)
    (info,) = json.loads(testbed.docker(host, "inspect", name).stdout)
    reliability.case(
        "secrets during a real launch",
        suite="secrets",
        phase="probe to ready",
        fault="HF_TOKEN from the environment, -e MY_API_KEY, a cluster env DB_PASSWORD",
        checked=f"`ps -eo args` on the host and here ({sampler.samples} samples), stdout/stderr, --json, dry-run, "
        "status, logs and job records hold no secret; the container's env holds each",
        inputs=len(SECRETS),
        secrets_leaked=len(leaked),
        tracebacks=tracebacks(run.stderr),
        exit_code=code,
    )
    assert code == 0, run.stderr
    assert leaked == [], leaked
    assert sampler.samples >= 3
    assert {f"{k}={v}" for k, v in SECRETS.items()} <= set(info["Config"]["Env"])
    assert not any(v in " ".join([*info["Config"]["Entrypoint"], *info["Config"]["Cmd"]]) for v in SECRETS.values())
