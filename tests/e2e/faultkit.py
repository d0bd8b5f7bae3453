"""Fault injection for the reliability suites on the test cluster: a `sparkrun run` in the background whose progress
can be waited for, signals to it, and host faults beyond the testbed's own (link, delay, shape): sshd killed and
restarted, dockerd stopped and restarted, containers killed. Observations go through each host's docker socket
(`testbed.docker`), so they work while a host's link is down."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from e2e.cli import IMAGE, sparkrun
from testbed.harness import Testbed

SYS_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def wait_until(check: Callable[[], bool], timeout: float, what: str, every: float = 0.2) -> float:
    """Seconds until `check()` held; fails with `what` after `timeout`."""
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        time.sleep(every)
    return time.monotonic() - t0


def job_containers(testbed: Testbed, host: str, job: str | None = None) -> list[str]:
    """sparkrun containers on `host` (of `job`, or of any job), via the host's docker socket."""
    return [
        c["name"]
        for c in testbed.containers(host)
        if "sparkrun.job" in c["labels"] and (job is None or c["labels"]["sparkrun.job"] == job)
    ]


class GoneWatch:
    """Watches a host (through its docker socket, so a cut link does not matter) from now on, and notes when it
    first has no container of `job` (or of any sparkrun job). A docker daemon that does not answer counts as
    "not known yet"."""

    def __init__(self, testbed: Testbed, host: str, job: str | None = None) -> None:
        self.testbed, self.host, self.job = testbed, host, job
        self.since = time.monotonic()
        self.gone_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                if not job_containers(self.testbed, self.host, self.job):
                    self.gone_at = time.monotonic()
                    return
            except (AssertionError, subprocess.SubprocessError):
                pass  # dockerd down: not known
            self._stop.wait(0.2)

    def seconds(self, timeout: float) -> float:
        """Seconds from the start of the watch to 0 containers; fails after `timeout` seconds of watching."""
        self._thread.join(max(0.0, timeout - (time.monotonic() - self.since)))
        self._stop.set()
        if self.gone_at is None:
            raise AssertionError(f"{self.host}: sparkrun containers still there {timeout:.0f}s after the fault")
        return self.gone_at - self.since


def left_everywhere(testbed: Testbed) -> int:
    return sum(len(job_containers(testbed, h)) for h in testbed.hosts)


def tracebacks(*texts: str) -> int:
    """Python tracebacks sparkrun printed (an engine's log tail, shown as `  | ` lines, does not count)."""
    return sum(1 for t in texts for line in t.splitlines() if "Traceback" in line and not line.startswith("  | "))


def error_line(stderr: str) -> str:
    return next((line for line in stderr.splitlines() if line.startswith("error: ")), "")


@dataclass
class Run:
    """`sparkrun run ...` in the background; stderr is collected as it arrives."""

    env: dict[str, str]
    args: tuple[str, ...]
    verbose: tuple[str, ...] = ()  # options before `run` (-v, -vv)
    proc: subprocess.Popen[str] = field(init=False)
    lines: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sparkrun", *self.verbose, "run", *self.args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out_lines: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stderr, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out_lines), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: IO[str] | None, into: list[str]) -> None:
        assert stream is not None
        for line in stream:
            into.append(line.rstrip("\n"))

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    @property
    def stdout(self) -> str:
        return "\n".join(self.out_lines)

    def _said(self, text: str) -> bool:
        return any(text in line for line in self.lines) or any(text in line for line in self.out_lines)

    def wait_for(self, text: str, timeout: float = 90) -> None:
        """Until `text` appears in the output (stderr or stdout)."""
        try:
            wait_until(lambda: self._said(text) or self.proc.poll() is not None, timeout, text)
        except AssertionError:
            raise AssertionError(f"no {text!r} from sparkrun run within {timeout}s:\n{self.stderr}") from None
        if not self._said(text):
            self.finish(10)
            raise AssertionError(f"sparkrun run ended (exit {self.proc.returncode}) before {text!r}:\n{self.stderr}")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def finish(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        return code


def solo_args(host: str, *extra: str) -> tuple[str, ...]:
    return ("qwen3-1.7b-vllm", "--cluster", "testbed", "-H", host, "--image", IMAGE, "--no-follow", *extra)


def stop_all(env: dict[str, str]) -> None:
    sparkrun(env, "stop", "--all", "--cluster", "testbed", timeout=120)


# ---- host faults -------------------------------------------------------------------------------------------------


def _daemon_argv(testbed: Testbed, host: str, pidfile: str) -> list[str]:
    out = testbed.exec(host, f"tr '\\0' '\\n' < /proc/$(cat {pidfile})/cmdline").stdout
    return [a for a in out.split("\n") if a]


def _restart_in_host(testbed: Testbed, host: str, argv: list[str], log: str) -> None:
    """Start a daemon again inside the host's namespaces, in its init cgroup (so `testbed.sh down` finds it)."""
    i = testbed.index(host)
    cmd = shlex.join(argv)
    testbed.exec(
        host,
        f"for cg in /sys/fs/cgroup/tb-h{i}/init /sys/fs/cgroup/pids/tb-h{i}/init; do "
        f'[ -w "$cg/cgroup.procs" ] && echo $$ > "$cg/cgroup.procs" && break; done; '
        f"env -i PATH={SYS_PATH} HOME=/root setsid {cmd} </dev/null >>{shlex.quote(log)} 2>&1 &",
    )


@dataclass
class Sshd:
    """Kill a host's sshd (listener and sessions: connections drop, new ones are refused), and start it again."""

    testbed: Testbed
    host: str
    argv: list[str] = field(default_factory=list)

    def kill(self) -> None:
        argv = _daemon_argv(self.testbed, self.host, "/run/sshd.pid")
        if len(argv) == 1 and argv[0].startswith("sshd: "):  # OpenSSH >= 9.8 retitles its listener
            argv = argv[0].removeprefix("sshd: ").split(" [listener]")[0].split()
        self.argv = argv
        self.testbed.exec(self.host, "pkill -KILL -x sshd; rm -f /run/sshd.pid", check=False)

    def start(self) -> None:
        log = self.argv[self.argv.index("-E") + 1] if "-E" in self.argv else "/dev/null"
        _restart_in_host(self.testbed, self.host, [a for a in self.argv if a != "-D"], log)
        wait_until(lambda: self.testbed.ssh(self.host, "true", check=False).returncode == 0, 30, "sshd back")


@dataclass
class Dockerd:
    """Stop a host's dockerd (it stops its containers; the daemon does not answer), and start it again."""

    testbed: Testbed
    host: str
    argv: list[str] = field(default_factory=list)

    def stop(self) -> None:
        self.argv = _daemon_argv(self.testbed, self.host, "/run/dockerd.pid")
        self.testbed.exec(self.host, "kill -TERM $(cat /run/dockerd.pid)")
        wait_until(
            lambda: self.testbed.exec(self.host, "docker version >/dev/null 2>&1", check=False).returncode != 0,
            60,
            "dockerd stopped",
        )

    def freeze(self) -> None:
        """SIGSTOP: the daemon hangs (every docker command waits), like a host under heavy swap."""
        self.testbed.exec(self.host, "kill -STOP $(cat /run/dockerd.pid)")

    def thaw(self) -> None:
        self.testbed.exec(self.host, "kill -CONT $(cat /run/dockerd.pid)", check=False)

    def start(self) -> None:
        log = "/dev/null"
        _restart_in_host(self.testbed, self.host, self.argv, log)
        wait_until(
            lambda: self.testbed.exec(self.host, "docker version >/dev/null 2>&1", check=False).returncode == 0,
            90,
            "dockerd back",
            every=0.5,
        )


def kill_container(testbed: Testbed, host: str, job: str | None = None) -> None:
    for name in job_containers(testbed, host, job):
        testbed.docker(host, "kill", name, check=False)


def restore(testbed: Testbed, hosts: list[str]) -> None:
    """Plug every cable back in (idempotent), for a test's `finally`."""
    for host in hosts:
        testbed.link(host, up=True)


SIGKILL, SIGINT, SIGTERM = signal.SIGKILL, signal.SIGINT, signal.SIGTERM
