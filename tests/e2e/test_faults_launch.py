"""Faults while the ranks start (the head's start group, then the workers'), two two-host jobs at a time: links cut,
the CLI interrupted (SIGINT, SIGTERM) or killed (SIGKILL), sshd killed on a host. A `pre_exec` hook that sleeps holds
each rank's launch step, so every fault hits a step that is running on a host. Each case ends with a one-line cause
and a documented exit code, and with no sparkrun container on any host once it is back, within the lease bound."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from e2e.cli import IMAGE, ok
from e2e.faultkit import (
    SIGINT,
    SIGKILL,
    SIGTERM,
    GoneWatch,
    Run,
    Sshd,
    error_line,
    job_containers,
    left_everywhere,
    restore,
    stop_all,
    tracebacks,
    wait_until,
)
from reliability_report import CaseLog
from testbed.harness import Testbed

pytestmark = pytest.mark.e2e

LEASE = 8
HOOK_SECONDS = 25
RECIPE = """\
recipe_version: "2"
model: Qwen/Qwen3-1.7B
runtime: vllm
defaults:
  port: 8000
  host: 0.0.0.0
  served_model_name: held
  tensor_parallel: 2
  max_model_len: 8192
pre_exec:
  - sleep {seconds}
command: |
  vllm serve {{model}} --host {{host}} --port {{port}} --served-model-name {{served_model_name}}
    --tensor-parallel-size {{tensor_parallel}} --max-model-len {{max_model_len}}
"""


@pytest.fixture
def env(sparkrun_env: dict[str, str], testbed: Testbed) -> Iterator[dict[str, str]]:
    yield dict(sparkrun_env, SPARKRUN_LEASE_SECONDS=str(LEASE))
    restore(testbed, testbed.hosts)
    stop_all(sparkrun_env)


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "held-start.yaml"
    path.write_text(RECIPE.format(seconds=HOOK_SECONDS))
    return path


@dataclass
class Job:
    run: Run
    head: str
    worker: str
    job: str

    def wait_phase(self, testbed: Testbed, role: str) -> None:
        """Until the rank `role` has its container and its launch step sits in the hook."""
        host = self.head if role == "head" else self.worker
        self.run.wait_for(f"_{role}" if role == "head" else "_worker1", timeout=120)
        wait_until(lambda: bool(job_containers(testbed, host, self.job)), 60, f"{role} container on {host}")
        time.sleep(2)


def start(env: dict[str, str], recipe: Path, head: str, worker: str) -> Job:
    args = (str(recipe), "--cluster", "testbed", "-H", f"{head},{worker}", "--image", IMAGE, "--no-follow")
    job = str(json.loads(ok(env, "run", *args, "--dry-run", "--json").stdout)["job"])
    return Job(Run(env, args), head, worker, job)


def _record(
    reliability: CaseLog,
    job: Job,
    testbed: Testbed,
    *,
    name: str,
    phase: str,
    fault: str,
    checked: str,
    code: int,
    seconds: float | None = None,
) -> None:
    reliability.case(
        name,
        suite="faults",
        phase=phase,
        fault=fault,
        checked=checked,
        exit_code=code,
        cause=error_line(job.run.stderr),
        containers_left=len(job_containers(testbed, job.head, job.job) + job_containers(testbed, job.worker, job.job)),
        tracebacks=tracebacks(job.run.stderr, job.run.stdout),
        seconds=seconds,
        lease_seconds=LEASE if seconds is not None else None,
    )


def test_head_phase_link_cut_and_sigterm(
    env: dict[str, str], testbed: Testbed, recipe: Path, reliability: CaseLog
) -> None:
    h1, h2, h3, h4 = testbed.hosts[:4]
    cut, term = start(env, recipe, h1, h2), start(env, recipe, h3, h4)
    cut.wait_phase(testbed, "head")
    term.wait_phase(testbed, "head")
    try:
        testbed.link(h1, up=False)
        watch = GoneWatch(testbed, h1)
        term.run.signal(SIGTERM)
        term_code = term.run.finish(60)
        gone = watch.seconds(LEASE + 20)
        cut_code = cut.run.finish(120)
    finally:
        testbed.link(h1, up=True)
    _record(
        reliability,
        cut,
        testbed,
        name="head's link cut while it starts",
        phase="start: head",
        fault=f"link of {h1} (head) down during its launch step",
        checked="exit 4 naming the head, the step and SSH; the head removes its container itself",
        code=cut_code,
        seconds=gone,
    )
    _record(
        reliability,
        term,
        testbed,
        name="SIGTERM to the CLI while the head starts",
        phase="start: head",
        fault="kill -TERM of sparkrun run",
        checked="exit 130, the job removed on every host before exit",
        code=term_code,
    )
    assert term_code == 130 and "interrupted" in term.run.stderr
    assert not job_containers(testbed, h3, term.job) and not job_containers(testbed, h4, term.job)
    assert cut_code == 4, cut.run.stderr
    assert error_line(cut.run.stderr).startswith(f"error: {h1}: "), cut.run.stderr
    assert "SSH" in error_line(cut.run.stderr) or ": lease: " in error_line(cut.run.stderr)
    assert left_everywhere(testbed) == 0
    assert tracebacks(cut.run.stderr, term.run.stderr) == 0


def test_workers_phase_sigkill_and_link_cut(
    env: dict[str, str], testbed: Testbed, recipe: Path, reliability: CaseLog
) -> None:
    h1, h2, h3, h4 = testbed.hosts[:4]
    killed, cut = start(env, recipe, h1, h2), start(env, recipe, h3, h4)
    killed.wait_phase(testbed, "worker")
    cut.wait_phase(testbed, "worker")
    try:
        killed.run.signal(SIGKILL)
        watches = [GoneWatch(testbed, h, killed.job) for h in (h1, h2)]
        testbed.link(h4, up=False)
        cut_watch = GoneWatch(testbed, h4)
        killed_gone = max(w.seconds(LEASE + 20) for w in watches)
        cut_gone = cut_watch.seconds(LEASE + 20)
        killed_code, cut_code = killed.run.finish(30), cut.run.finish(120)
    finally:
        testbed.link(h4, up=True)
    _record(
        reliability,
        killed,
        testbed,
        name="SIGKILL to the CLI while the workers start",
        phase="start: workers",
        fault="kill -9 of sparkrun run",
        checked="both hosts' watchdogs remove the job when the lease runs out",
        code=killed_code,
        seconds=killed_gone,
    )
    _record(
        reliability,
        cut,
        testbed,
        name="worker's link cut while it starts",
        phase="start: workers",
        fault=f"link of {h4} (worker) down during its launch step",
        checked="exit 4 naming the worker and SSH; undo on the head; the worker removes its container itself",
        code=cut_code,
        seconds=cut_gone,
    )
    assert killed_code == -signal.SIGKILL
    assert cut_code == 4 and error_line(cut.run.stderr).startswith(f"error: {h4}: "), cut.run.stderr
    assert left_everywhere(testbed) == 0
    assert tracebacks(cut.run.stderr) == 0


def test_head_phase_sigint_and_sshd_killed(
    env: dict[str, str], testbed: Testbed, recipe: Path, reliability: CaseLog
) -> None:
    h1, h2, h3, h4 = testbed.hosts[:4]
    interrupted, sshd_job = start(env, recipe, h1, h2), start(env, recipe, h3, h4)
    interrupted.wait_phase(testbed, "head")
    sshd_job.wait_phase(testbed, "head")
    sshd = Sshd(testbed, h3)
    try:
        sshd.kill()
        watch = GoneWatch(testbed, h3)
        interrupted.run.signal(SIGINT)
        int_code = interrupted.run.finish(60)
        gone = watch.seconds(LEASE + 25)  # while sshd is still dead: the watchdog needs no connection
        sshd_code = sshd_job.run.finish(120)
    finally:
        if sshd.argv:
            sshd.start()
    _record(
        reliability,
        interrupted,
        testbed,
        name="Ctrl-C (SIGINT) while the head starts",
        phase="start: head",
        fault="kill -INT of sparkrun run",
        checked="exit 130, the job removed on every host before exit",
        code=int_code,
    )
    _record(
        reliability,
        sshd_job,
        testbed,
        name="sshd killed on the head while it starts",
        phase="start: head",
        fault=f"every sshd on {h3} killed (connections drop, new ones refused)",
        checked="exit 4 naming the head and SSH; its watchdog removes the job with sshd still dead",
        code=sshd_code,
        seconds=gone,
    )
    assert int_code == 130
    assert sshd_code == 4, sshd_job.run.stderr
    assert error_line(sshd_job.run.stderr).startswith(f"error: {h3}: "), sshd_job.run.stderr
    assert "SSH" in error_line(sshd_job.run.stderr) or ": lease: " in error_line(sshd_job.run.stderr)
    assert left_everywhere(testbed) == 0
