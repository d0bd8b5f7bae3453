"""Helpers to run the stand-in engines (scripts/testbed/engine, stdlib only) as processes on 127.0.0.1."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ENGINE_DIR = Path(__file__).resolve().parents[2] / "scripts" / "testbed" / "engine"
if str(ENGINE_DIR) not in sys.path:  # so the tests can import `standin` (the flag parser) in-process
    sys.path.insert(0, str(ENGINE_DIR))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A running stand-in: its output is collected line by line in the background."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.argv = argv
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "standin", *argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output:
                return
            if self.popen.poll() is not None:
                time.sleep(0.1)  # let the reader catch up
                if text in self.output:
                    return
                raise AssertionError(f"exited {self.popen.returncode} before {text!r}:\n{self.output}")
            time.sleep(0.02)
        raise AssertionError(f"no {text!r} within {timeout}s:\n{self.output}")

    def wait(self, timeout: float = 15) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout}s:\n{self.output}") from None

    def term(self, timeout: float = 5) -> int:
        self.popen.send_signal(signal.SIGTERM)
        return self.wait(timeout)


Runner = Callable[..., Proc]
