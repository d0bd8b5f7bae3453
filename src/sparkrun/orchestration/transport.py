"""The one seam through which sparkrun affects hosts: pipe a bash script into `bash -s`, locally or over SSH.

SSH uses the system OpenSSH client, so the user's `~/.ssh/config`, agent and ProxyJump keep working. Connections are
multiplexed (ControlMaster=auto in a private control directory, ControlPersist), so after the first handshake to a
host every further step costs one round trip (~10 ms on a LAN) instead of a new handshake. `BatchMode=yes` means
sparkrun never hangs on a password prompt. Host-key checking is left to the user's configuration, never disabled.

A host that is this machine runs `bash -s` directly (no SSH to ourselves).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sparkrun.config import ssh_control_dir
from sparkrun.orchestration.hosts import Host
from sparkrun.orchestration.protocol import Output, parse_output

DEFAULT_CONNECT_TIMEOUT = 10.0
CONTROL_PERSIST_SECONDS = 120
SSH_FAILED = 255  # OpenSSH's exit status for its own errors


@dataclass(frozen=True)
class Script:
    """A complete bash script (quoted preamble + library + body); `name` is what logs and errors call it."""

    name: str
    text: str


@dataclass(frozen=True)
class Result:
    host: str
    script: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    transport_error: str | None = None  # set when the script never ran (connect/auth failure, timeout)
    _output: list[Output] = field(default_factory=list, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.transport_error is None

    @property
    def output(self) -> Output:
        if not self._output:
            self._output.append(parse_output(self.stdout))
        return self._output[0]

    def failure(self) -> tuple[str, str]:
        """(step, cause) for an error message: the script's own `fail` event, else the transport error, else stderr."""
        if self.transport_error:
            return "connect", self.transport_error
        fail = self.output.last("fail")
        if fail:
            step, _, cause = fail.partition(" ")
            return step, cause or "failed"
        tail = [line for line in self.stderr.strip().splitlines() if line.strip()][-1:]
        return self.script, f"exited with status {self.returncode}" + (f": {tail[0]}" if tail else "")


_SSH_ERRORS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"Connection timed out|Operation timed out|timed out during banner"), "connection timed out"),
    (re.compile(r"No route to host"), "no route to host"),
    (re.compile(r"Connection refused"), "connection refused (is sshd running?)"),
    (re.compile(r"Could not resolve hostname"), "could not resolve host name"),
    (re.compile(r"Permission denied"), "SSH authentication failed (permission denied)"),
    (re.compile(r"Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED"), "host key not trusted"),
    (re.compile(r"Network is unreachable"), "network is unreachable"),
    (re.compile(r"Connection closed|Connection reset"), "connection closed by the host"),
]

SSH_HINTS = {
    "host key not trusted": "verify the host and add its key: ssh-keyscan -H HOST >> ~/.ssh/known_hosts",
    "SSH authentication failed (permission denied)": "check the SSH user/key (sparkrun cluster show NAME); "
    "sparkrun never asks for passwords",
    "connection timed out": "check that the host is up and reachable on the SSH port",
}


def classify_ssh_error(stderr: str) -> str:
    for pattern, message in _SSH_ERRORS:
        if pattern.search(stderr):
            return message
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "ssh failed"


class Transport:
    """Runs scripts on hosts. One instance per command invocation; thread-safe."""

    def __init__(
        self,
        *,
        control_dir: Path | None = None,
        max_parallel: int = 16,
        trace: Callable[[str], None] | None = None,
    ) -> None:
        self.control_dir = control_dir or ssh_control_dir()
        self.max_parallel = max_parallel
        self.trace = trace  # gets one line per finished script run (`sparkrun -v`)
        self.calls: list[tuple[str, str, float]] = []  # (host, script, seconds): round trips, for -v and benches
        self._live: set[subprocess.Popen[str]] = set()

    def _ensure_control_dir(self) -> None:
        self.control_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = self.control_dir.stat()
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            os.chmod(self.control_dir, 0o700)

    def command(self, host: Host) -> list[str]:
        """The argv that runs `bash -s` on `host` (stdin = the script)."""
        if host.local:
            return ["bash", "-s"]
        self._ensure_control_dir()
        s = host.ssh
        timeout = s.connect_timeout if s.connect_timeout is not None else DEFAULT_CONNECT_TIMEOUT
        argv = ["ssh", "-T", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, round(timeout))}"]
        # A multiplexed session over a dead link would otherwise wait for TCP to give up: probe every 5 s, drop
        # the connection after two unanswered probes.
        argv += ["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=2"]
        argv += ["-o", "ControlMaster=auto", "-o", f"ControlPath={self.control_dir}/%C"]
        argv += ["-o", f"ControlPersist={CONTROL_PERSIST_SECONDS}"]
        if s.port:
            argv += ["-p", str(s.port)]
        if s.user:
            argv += ["-l", s.user]
        if s.identity_file:
            argv += ["-i", os.path.expanduser(s.identity_file)]
        for key, value in s.options:
            argv += ["-o", f"{key}={value}"]
        return [*argv, "--", host.address, "bash -s"]

    def run(self, host: Host, script: Script, *, timeout: float | None = None) -> Result:
        started = time.monotonic()
        try:
            proc = self._spawn(host)
        except FileNotFoundError as exc:
            return Result(host.address, script.name, -1, "", "", 0.0, f"cannot run {exc.filename}: not installed")
        try:
            stdout, stderr = proc.communicate(script.text, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, _ = proc.communicate()
            seconds = time.monotonic() - started
            self._record(host, script, seconds)
            return Result(host.address, script.name, -1, stdout, "", seconds, f"no answer within {timeout:.0f}s")
        finally:
            self._live.discard(proc)
        seconds = time.monotonic() - started
        self._record(host, script, seconds)
        error = None
        if proc.returncode == SSH_FAILED and not host.local and "@sr " not in stdout:
            error = classify_ssh_error(stderr)
        return Result(host.address, script.name, proc.returncode, stdout, stderr, seconds, error)

    def _spawn(self, host: Host) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            self.command(host),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # Own process group: a Ctrl-C reaches sparkrun only, which then stops these children itself and
            # still has working connections for the cleanup.
            start_new_session=True,
        )
        self._live.add(proc)
        return proc

    def terminate_all(self) -> None:
        """Stop every script still running (on Ctrl-C/SIGTERM, before cleanup)."""
        for proc in list(self._live):
            if proc.poll() is None:
                proc.terminate()
        for proc in list(self._live):
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
            self._live.discard(proc)

    def _record(self, host: Host, script: Script, seconds: float) -> None:
        self.calls.append((host.address, script.name, seconds))
        if self.trace is not None:
            self.trace(f"transport: {host.address}: {script.name}: {seconds:.3f}s")

    def run_many(self, jobs: Sequence[tuple[Host, Script]], *, timeout: float | None = None) -> list[Result]:
        """Run each (host, script) in parallel (bounded); waits for every host and returns results in order."""
        if len(jobs) == 1:
            return [self.run(*jobs[0], timeout=timeout)]
        pool = ThreadPoolExecutor(max_workers=max(1, min(self.max_parallel, len(jobs))))
        try:
            return list(pool.map(lambda job: self.run(job[0], job[1], timeout=timeout), jobs))
        except BaseException:
            self.terminate_all()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def stream(self, host: Host, script: Script) -> Stream:
        """Start a script and read its stdout line by line as it arrives (logs -f, readiness progress)."""
        proc = self._spawn(host)
        assert proc.stdin is not None
        try:
            proc.stdin.write(script.text)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        return Stream(host, script, proc, self)


class Stream:
    def __init__(self, host: Host, script: Script, proc: subprocess.Popen[str], transport: Transport) -> None:
        self.host = host
        self.script = script
        self.proc = proc
        self.transport = transport
        self.started = time.monotonic()
        self.lines: list[str] = []

    def __iter__(self) -> Iterator[str]:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.rstrip("\n")
            self.lines.append(line)
            yield line

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def result(self) -> Result:
        """Wait for the end and return the same `Result` as `Transport.run` would have."""
        stderr = self.proc.stderr.read() if self.proc.stderr is not None else ""
        code = self.proc.wait()
        seconds = time.monotonic() - self.started
        self.transport._record(self.host, self.script, seconds)
        self.transport._live.discard(self.proc)
        stdout = "\n".join(self.lines) + ("\n" if self.lines else "")
        error = None
        if code == SSH_FAILED and not self.host.local and "@sr " not in stdout:
            error = classify_ssh_error(stderr)
        return Result(self.host.address, self.script.name, code, stdout, stderr, seconds, error)
