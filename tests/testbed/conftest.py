"""Run the stand-in engines (scripts/testbed/engine, stdlib only) directly on this machine, on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.standin_harness import ENGINE_DIR, Proc, Runner


@pytest.fixture
def engine_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(ENGINE_DIR),
        STANDIN_STARTUP_SECONDS="0.1",
        STANDIN_ACCESS_LOG="1",
        RAY_TMPDIR=str(tmp_path / "ray"),
    )
    for k in ("STANDIN_FAIL", "STANDIN_REQUIRE_GPU", "NVIDIA_VISIBLE_DEVICES", "RAY_ADDRESS", "STANDIN_CHECK_MODEL"):
        env.pop(k, None)
    return env


@pytest.fixture
def engine(engine_env: dict[str, str]) -> Iterator[Runner]:
    """engine("vllm", "serve", ..., env={...}) starts a stand-in; all are killed after the test."""
    procs: list[Proc] = []

    def run(*argv: str, env: dict[str, str] | None = None) -> Proc:
        p = Proc(list(argv), {**engine_env, **(env or {})})
        procs.append(p)
        return p

    yield run
    for p in procs:
        if p.popen.poll() is None:
            p.popen.kill()
            p.popen.wait(5)
    # `ray start` without --block leaves daemons: stop them the way a user would
    subprocess.run(
        [sys.executable, "-m", "standin", "ray", "stop", "--force"],
        env=engine_env,
        capture_output=True,
        timeout=30,
        check=False,
    )
