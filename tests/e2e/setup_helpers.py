"""Helpers for the `sparkrun setup` end-to-end tests: the check as data, the CLI on a pseudo-terminal (for the sudo
password prompt), and a watcher that records every host's process list while a command runs."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from e2e.cli import sparkrun
from testbed.harness import Testbed

SETUP_TIMEOUT = 600


def own_connections(env: dict[str, str]) -> dict[str, str]:
    """The environment with a control directory of its own: sparkrun's shared SSH connections outlive a command by
    two minutes and keep the groups of their login, so a test starts with new logins (after the last test changed
    the hosts' groups)."""
    control = tempfile.mkdtemp(prefix="sr-setup-", dir="/tmp")  # short: a socket path has at most 107 bytes
    return {**env, "SPARKRUN_SSH_CONTROL_DIR": control}


def check(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    r = sparkrun(env, "setup", "check", "--json", *args, timeout=SETUP_TIMEOUT)
    assert r.stdout.strip(), f"no JSON from setup check {args}: exit {r.returncode}\n{r.stderr}"
    return r.returncode, json.loads(r.stdout)


def lines_by_host(report: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for line in report["checks"]:
        out.setdefault(line["host"], {})[line["check"]] = line
    return out


def failing(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(line["host"], line["check"]) for line in report["checks"] if line["status"] == "fail"}


def on_terminal(
    env: dict[str, str], args: list[str], answers: dict[str, str], timeout: float = SETUP_TIMEOUT
) -> tuple[int, str, list[str]]:
    """Run `sparkrun ARGS` on a pseudo-terminal; whenever a prompt containing a key of `answers` appears, type the
    answer. Returns (exit code, everything the terminal showed, the prompts answered in order)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: sparkrun, with the terminal as stdin/stdout/stderr and controlling tty
        os.execvpe(sys.executable, [sys.executable, "-m", "sparkrun", *args], env)
    shown = b""
    seen = 0
    prompts: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"sparkrun {' '.join(args)} did not finish in {timeout}s:\n{shown.decode()}")
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
        fresh = shown[seen:].decode(errors="replace")
        for key, answer in answers.items():
            if key in fresh and fresh.rstrip().endswith(":"):
                prompts.append(fresh.strip().splitlines()[-1])
                os.write(fd, answer.encode() + b"\n")
                seen = len(shown)
                break
    _pid, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace"), prompts


@contextmanager
def process_lists(testbed: Testbed, hosts: list[str]) -> Iterator[list[str]]:
    """Collects `ps -eo args` from every host, over and over, while the block runs."""
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for host in hosts:
                r = testbed.exec(host, "ps -eo args", check=False, timeout=30)
                seen.append(r.stdout)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(timeout=60)


def files_containing(root: Path, needle: str) -> list[str]:
    found = []
    for path in root.rglob("*"):
        try:
            if path.is_file() and needle.encode() in path.read_bytes():
                found.append(str(path))
        except OSError:
            continue
    return found
