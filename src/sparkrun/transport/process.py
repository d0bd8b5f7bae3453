"""The part of the transport that runs a host's bootstrap command as a local process (ssh, or bash for this machine).

Subclasses only say which argv runs a command on a host (`argv`) and how to recognise the connection's own failures
(`transport_error`). Every process gets its own session, so a Ctrl-C reaches sparkrun alone, which then stops its
children itself (`terminate_all`) and still has working connections for the cleanup.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import IO

from sparkrun.hosts import Host
from sparkrun.shell import Script, render_script
from sparkrun.transport.base import (
    KILL_AFTER_S,
    TIMEOUT_CODES,
    Direct,
    PipeResult,
    Result,
    boot_command,
)
from sparkrun.transport.protocol import parse_output

CHUNK = 1 << 20
# The local process gets this long beyond the remote `timeout` (plus its kill grace) before it is killed here.
LOCAL_GRACE_S = 10.0


def _text(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace")


def _copy(src: IO[bytes], dst: IO[bytes]) -> None:
    """Move bytes between two pipes: in the kernel where it can (Linux splice), else through a small buffer."""
    fin, fout = src.fileno(), dst.fileno()
    splice = getattr(os, "splice", None)
    try:
        while True:
            moved = splice(fin, fout, CHUNK) if splice else os.write(fout, os.read(fin, CHUNK) or b"")
            if not moved:
                return
    except OSError:
        return  # the reader went away; its own exit status tells what happened
    finally:
        dst.close()


class ProcessTransport(ABC):
    """Runs scripts through a local process per round trip. Thread-safe; one instance per command invocation."""

    def __init__(self, *, max_parallel: int = 16, trace: Callable[[str], None] | None = None) -> None:
        self.max_parallel = max_parallel
        self.trace = trace  # gets one line per finished round trip (`sparkrun -v`)
        self.calls: list[tuple[str, str, float]] = []
        self._live: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    # ---- what subclasses define ------------------------------------------------------------------------------
    @abstractmethod
    def argv(self, host: Host, command: str) -> list[str]:
        """The local argv that runs the shell `command` on `host`."""

    def transport_error(self, host: Host, returncode: int, stdout: str, stderr: str) -> str | None:
        """The connection's own failure (e.g. SSH exit 255), or None when the script itself ran."""
        return None

    def direct_ssh(self, source: Host, sink: Host, address: str) -> list[str]:
        """ssh argv (without the remote command) that `source` uses to reach `sink` at `address`."""
        raise NotImplementedError(f"{type(self).__name__} cannot pipe host to host")

    # ---- processes ---------------------------------------------------------------------------------------------
    def _spawn(
        self,
        host: Host,
        script: Script,
        timeout: float | None,
        *,
        stdin: int | IO[bytes] = subprocess.PIPE,
    ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            self.argv(host, boot_command(script, timeout)),
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        with self._lock:
            self._live.add(proc)
        return proc

    def _forget(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._live.discard(proc)

    def _record(self, host: Host, script: Script, seconds: float) -> None:
        self.calls.append((host.address, script.name, seconds))
        if self.trace is not None:
            self.trace(f"transport: {host.address}: {script.name}: {seconds:.3f}s")

    def _result(
        self,
        host: Host,
        script: Script,
        code: int,
        out: bytes | str,
        err: bytes | str,
        started: float,
        timeout: float | None,
    ) -> Result:
        seconds = time.monotonic() - started
        self._record(host, script, seconds)
        stdout = out if isinstance(out, str) else _text(out)
        stderr = err if isinstance(err, str) else _text(err)
        timed_out = None
        if timeout is not None and code in TIMEOUT_CODES and seconds >= timeout - 1:
            timed_out = float(timeout) if parse_output(stdout).last("fail") is None else None
        error = None if timed_out else self.transport_error(host, code, stdout, stderr)
        return Result(host.address, script.name, code, stdout, stderr, seconds, error, timed_out)

    @staticmethod
    def _local_limit(timeout: float | None) -> float | None:
        return None if timeout is None else timeout + KILL_AFTER_S + LOCAL_GRACE_S

    def _failed_to_start(self, host: Host, script: Script, exc: OSError) -> Result:
        what = getattr(exc, "filename", None) or str(exc)
        return Result(host.address, script.name, -1, "", "", 0.0, f"cannot run {what}: {exc.strerror or exc}")

    # ---- the operations ----------------------------------------------------------------------------------------
    def run(self, host: Host, script: Script, *, timeout: float | None = None) -> Result:
        started = time.monotonic()
        try:
            proc = self._spawn(host, script, timeout)
        except OSError as exc:
            return self._failed_to_start(host, script, exc)
        try:
            out, err = proc.communicate(script.framed() + script.stdin, timeout=self._local_limit(timeout))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            return self._result(host, script, 124, out, err, started - (timeout or 0), timeout)
        finally:
            self._forget(proc)
        return self._result(host, script, proc.returncode, out, err, started, timeout)

    def run_many(self, jobs: Sequence[tuple[Host, Script]], *, timeout: float | None = None) -> list[Result]:
        """Each (host, script) in parallel (bounded); waits for every job and returns the results in order."""
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

    def stream(self, host: Host, script: Script, *, timeout: float | None = None) -> ProcessStream:
        proc = self._spawn(host, script, timeout)
        assert proc.stdin is not None
        try:
            proc.stdin.write(script.framed() + script.stdin)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        return ProcessStream(self, host, script, proc, timeout)

    def open(self, host: Host, script: Script, *, timeout: float | None = None) -> ProcessChannel:
        proc = self._spawn(host, script, timeout)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(script.framed() + script.stdin)
            proc.stdin.flush()
        except BrokenPipeError:
            pass  # the connection failed at once: the channel's result says how (e.g. SSH's own error)
        return ProcessChannel(self, host, script, proc, timeout)

    def pipe(
        self,
        source: tuple[Host, Script],
        sink: tuple[Host, Script],
        *,
        direct: Direct | None = None,
        timeout: float | None = None,
    ) -> PipeResult:
        if direct is not None:
            return self._pipe_direct(source, sink, direct, timeout)
        src = self.open(*source, timeout=timeout)
        src.stdin.close()
        dst = self.open(*sink, timeout=timeout)
        mover = threading.Thread(target=_copy, args=(src.stdout, dst.stdin), daemon=True)
        mover.start()
        try:
            while mover.is_alive():  # in steps, so a Ctrl-C gets through
                mover.join(0.2)
        except BaseException:
            self.terminate_all()
            raise
        sink_result = dst.result()
        source_result = src.result()
        return PipeResult(source=source_result, sink=sink_result)

    def _pipe_direct(
        self, source: tuple[Host, Script], sink: tuple[Host, Script], direct: Direct, timeout: float | None
    ) -> PipeResult:
        (src_host, src_script), (dst_host, dst_script) = source, sink
        relay = render_script(
            "pipe_to",
            {
                "SINK_SSH": self.direct_ssh(src_host, dst_host, direct.address),
                "SINK_COMMAND": boot_command(dst_script, timeout),
                "SINK_SCRIPT": dst_script.text,
                "SOURCE_SCRIPT": src_script.text,
            },
            stdin=src_script.stdin,
        )
        result = self.run(src_host, relay, timeout=None if timeout is None else timeout + 2 * KILL_AFTER_S)
        piped = split_relay_result(result, src_script, dst_host, dst_script)
        got = piped.sink
        if not got.ok and got.transport_error is None:
            # the source host's own SSH to the sink failed (exit 255 with SSH's message on the relay's stderr)
            error = self.transport_error(dst_host, got.returncode, got.stdout, result.stderr)
            if error is not None:
                got = replace(got, transport_error=f"{error} (from {src_host.address}, host to host)")
                piped = PipeResult(source=piped.source, sink=got)
        return piped

    def terminate_all(self) -> None:
        """Stop every process still running (on Ctrl-C/SIGTERM, before cleanup)."""
        with self._lock:
            live = list(self._live)
        for proc in live:
            if proc.poll() is None:
                proc.terminate()
        for proc in live:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
            self._forget(proc)


def split_relay_result(result: Result, src: Script, dst_host: Host, dst: Script) -> PipeResult:
    """`pipe_to.sh` reports the sink's output, then the source's stderr (block `source`) and both exit codes."""
    out = result.output
    codes = (out.last("pipe") or "").split()
    sink_lines = [line for line in result.stdout.splitlines() if not line.startswith("@sr pipe ")]
    sink_text = "\n".join(line for line in sink_lines if not line.startswith("@sr-"))
    source_code = int(codes[0]) if len(codes) == 2 and codes[0].lstrip("-").isdigit() else result.returncode
    sink_code = int(codes[1]) if len(codes) == 2 and codes[1].lstrip("-").isdigit() else result.returncode
    source_text = out.blocks.get("source", "")
    source = Result(
        result.host,
        src.name,
        source_code,
        source_text,
        source_text,
        result.seconds,
        result.transport_error,
        result.timed_out,
    )
    sink = Result(
        dst_host.address,
        dst.name,
        sink_code,
        sink_text,
        "",
        result.seconds,
        result.transport_error if not codes else None,
        result.timed_out,
    )
    return PipeResult(source=source, sink=sink)


class ProcessStream:
    """stdout of a running script, line by line."""

    def __init__(
        self,
        transport: ProcessTransport,
        host: Host,
        script: Script,
        proc: subprocess.Popen[bytes],
        timeout: float | None,
    ) -> None:
        self.transport = transport
        self.host = host
        self.script = script
        self.proc = proc
        self.timeout = timeout
        self.started = time.monotonic()
        self.lines: list[str] = []

    def __iter__(self) -> Iterator[str]:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = _text(raw).rstrip("\n")
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
        """Wait for the end and return the same `Result` as `run` would have."""
        for _line in self:  # drain what is left
            pass
        stderr = self.proc.stderr.read() if self.proc.stderr is not None else b""
        code = self.proc.wait()
        self.transport._forget(self.proc)
        stdout = "\n".join(self.lines) + ("\n" if self.lines else "")
        return self.transport._result(self.host, self.script, code, stdout, stderr, self.started, self.timeout)


class ProcessChannel:
    """A running script with its stdin and stdout as byte pipes."""

    def __init__(
        self,
        transport: ProcessTransport,
        host: Host,
        script: Script,
        proc: subprocess.Popen[bytes],
        timeout: float | None,
    ) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self.transport = transport
        self.host = host
        self.script = script
        self.proc = proc
        self.timeout = timeout
        self.stdin: IO[bytes] = proc.stdin
        self.stdout: IO[bytes] = proc.stdout
        self.started = time.monotonic()
        self._stderr: list[bytes] = []
        self._err_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._err_reader.start()

    def _read_stderr(self) -> None:
        if self.proc.stderr is not None:
            self._stderr.append(self.proc.stderr.read())

    def result(self) -> Result:
        """Close stdin, read what is left of stdout (as text) and wait for the end."""
        if not self.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.stdin.close()
        rest = b"" if self.stdout.closed else self.stdout.read()
        code = self.proc.wait()
        self._err_reader.join(timeout=5)
        self.transport._forget(self.proc)
        return self.transport._result(
            self.host, self.script, code, rest, b"".join(self._stderr), self.started, self.timeout
        )
