"""Harness for the hostile-input property tests: hostile text, and the three places a value could be mangled or
executed on its way to a host, each run for real on this machine:

1. `launch.sh`, rendered exactly as for a host, run by bash with a stand-in `docker` that records the argv of
   `docker run` (and the private env file it reads from stdin) and runs `docker exec ... bash -c HOOK` here;
2. the container's main process (`ContainerSpec.argv`), run by bash/exec with a stand-in engine (`vllm`, ...) first
   on PATH that records the argv it got;
3. readiness.sh's request body, built by its own bash with a stand-in `curl` (see test_hostile_values.py).

A canary file that a hostile value would create if any shell evaluated it must never appear."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from hypothesis import strategies as st

from sparkrun.core.plan import Step
from sparkrun.hosts import Host
from sparkrun.launch.container import docker_run_argv
from sparkrun.launch.planner import JobPlan, RankPlan
from sparkrun.launch.steps import launch_plan
from sparkrun.transport.local import LocalTransport

HERE = Host("localhost", local=True)
CANARY = "{canary}"  # replaced by the test's canary path
PIECES = [
    f"$(touch {CANARY})",
    f"`touch {CANARY}`",
    f"; touch {CANARY}",
    f"&& touch {CANARY}",
    f"\ntouch {CANARY}\n",
    f"| touch {CANARY}",
    "'",
    '"',
    "\\",
    "$HOME",
    "${PATH}",
    "!",
    "*",
    "?",
    "[a-z]",
    "~",
    "#",
    "-",
    "--privileged",
    "-v/:/host",
    " ",
    "\t",
    "\r",
    "\x01",
    "\x1b[31m",
    "\x7f",
    "ünïcødé",
    "模型",
    "🚀",
    "\u202e",
    "%s%n",
    "{x}",
    "{{",
    "}}",
    "{model}",
    "=",
    ",",
    ":",
    "/",
    "..",
]
# Hostile text: pieces of shell, quoting, control characters, unicode and option-looking words, glued together and
# mixed with arbitrary text (NUL and lone surrogates included: those must be refused, not mangled).
HOSTILE = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=6)), min_size=1, max_size=6).map("".join)
LONG = ["x" * 70_000, "-" * 65_537, "$(touch {canary})" * 4000]
EXAMPLES = [*PIECES, "".join(PIECES), "a\x00b", "\ud800", " leading space", "trailing space ", *LONG]

STUB_DOCKER = r"""#!/usr/bin/env bash
# stand-in docker: records `run` and `exec`, runs hooks (`exec C bash -c TEXT`) here
case $1 in
  version) echo 27.0 ;;
  container) exit 1 ;;
  run)
    shift
    printf '%s\0' "$@" >"$STUB_DIR/run.argv"
    case " $* " in *" --env-file /dev/stdin "*) cat >"$STUB_DIR/env-file" ;; esac
    echo cid ;;
  inspect) echo "running 0" ;;
  exec)
    shift 2
    printf '%s\0' "$@" >>"$STUB_DIR/exec.argv"
    if [ "$1" = bash ] && [ "$2" = -c ]; then bash -c "$3"; fi ;;
  cp) cat >/dev/null ;;
esac
exit 0
"""
STUB_ENGINE = r"""#!/usr/bin/env bash
# stand-in engine: records the argv (after its own name) it was started with
printf '%s\0' "$@" >"$STUB_DIR/engine.argv"
"""
ENGINES = ("vllm", "sglang", "llama-server", "python3", "ray", "rpc-server")


class Listener:
    """A local TCP port that accepts (and drops) connections: launch.sh's wait for the rank's port ends at once."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            conn.close()


@dataclass
class Sandbox:
    root: Path
    canary: Path
    listener: Listener

    @classmethod
    def make(cls, root: Path) -> Sandbox:
        (root / "bin").mkdir(parents=True, exist_ok=True)
        (root / "stub").mkdir(exist_ok=True)
        (root / "bin" / "docker").write_text(STUB_DOCKER)
        for name in ENGINES:
            (root / "bin" / name).write_text(STUB_ENGINE)
        for tool in (root / "bin").iterdir():
            tool.chmod(0o755)
        return cls(root, root / "canary", Listener())

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{self.root / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "STUB_DIR": str(self.root / "stub"),
            "HOOK_OUT": str(self.root / "stub" / "hook.out"),
        }

    def value(self, text: str) -> str:
        return text.replace(CANARY, str(self.canary))

    def reset(self) -> None:
        shutil.rmtree(self.root / "stub")
        (self.root / "stub").mkdir()

    def recorded(self, name: str) -> list[str]:
        path = self.root / "stub" / name
        return path.read_bytes().decode("utf-8", "surrogateescape").split("\0")[:-1] if path.exists() else []

    def env_file(self) -> bytes:
        path = self.root / "stub" / "env-file"
        return path.read_bytes() if path.exists() else b""

    def hook_output(self) -> str | None:
        path = self.root / "stub" / "hook.out"
        return path.read_text() if path.exists() else None

    def run_launch(self, job: JobPlan) -> list[str]:
        """launch.sh for the API rank, as a host would run it; the `docker run` argv it executed."""
        step = _launch_step(job, self.listener.port)
        transport = LocalTransport()
        old = dict(os.environ)
        os.environ.update(self.env)
        try:
            result = transport.run(HERE, step.render(), timeout=60)
        finally:
            os.environ.clear()
            os.environ.update(old)
        assert result.ok, (result.failure(), result.stdout[-2000:], result.stderr[-2000:])
        return self.recorded("run.argv")

    def run_engine(self, rank: RankPlan) -> list[str]:
        """The container's main process, started as docker would (exec of argv, env from the spec)."""
        env = {**self.env, **dict(rank.container.env)}
        argv = list(rank.container.argv)
        subprocess.run(argv, env=env, check=False, timeout=30, capture_output=True)
        return self.recorded("engine.argv")


def _launch_step(job: JobPlan, port: int) -> Step:
    plan = launch_plan(job, None, wait_ready=False)
    step = next(s for s in plan.steps if s.script == "launch" and s.host == job.api_rank.host)
    values = {**step.values, "WAIT_ADDR": "127.0.0.1", "WAIT_PORT": str(port), "ENSURE_DIRS": []}
    values["PRE_TIMEOUTS"] = ["20"] * len(job.api_rank.pre_hooks)
    return replace(step, values=values)


def expected_docker_argv(rank: RankPlan) -> list[str]:
    return docker_run_argv(rank.container)[2:]  # after `docker run`


def dump(job: JobPlan) -> str:
    return json.dumps([r.container.to_json() for r in job.ranks], ensure_ascii=False)[:2000]
