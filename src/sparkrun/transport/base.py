"""The transport contract: what the rest of sparkrun may ask of a host, whatever connects to it.

A `Script` (`sparkrun.shell`) is bash text (quoted preamble + `lib.sh` + body, see `render_script`) plus optional bytes
for its stdin. The text is delivered ahead of the data on the same channel, framed by its length (see `boot_command`),
so the script's own stdin stays free for data: secrets for a private env file, a tar stream, a model file.

Implementations: `SshTransport` (the system OpenSSH client, ControlMaster), `LocalTransport` (bash on this
machine) and `FakeTransport` (in memory, for tests of planners and the apply engine). Each offers:

- `run(host, script)` -> `Result`; `run_many([(host, script), ...])` in parallel, one result per job, in order;
- `stream(host, script)` -> `Stream`: stdout line by line as it arrives (readiness progress, `logs -f`);
- `open(host, script)` -> `Channel`: binary stdin/stdout of a running script (copy bytes in or out);
- `pipe(source, sink)` -> `PipeResult`: the source script's stdout into the sink script's stdin, through this
  machine (OS pipe between the two connections, no Python buffer) or directly host to host (the source host runs
  SSH to the sink: `direct=...`).
A `timeout` names the step in the result and ends the remote process group (coreutils `timeout` on the host).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Protocol

from sparkrun.hosts import Host
from sparkrun.shell import Script
from sparkrun.transport.protocol import Output, parse_output

# Exit status of the remote bootstrap when the framed script did not arrive whole (connection lost while sending).
SHORT_SCRIPT = 97
TIMEOUT_CODES = (124, 137)  # coreutils `timeout`: 124 after SIGTERM, 128+9 when it had to SIGKILL
KILL_AFTER_S = 5


def boot_command(script: Script, timeout: float | None = None) -> str:
    """The command a host runs: read exactly the script's bytes from stdin, then run them in the same bash (so the
    script text never appears in a process list), with the rest of stdin left for the script."""
    size = len(script.framed())
    inner = 'LC_ALL=C IFS= read -r -N "$1" __sr_script || exit 97; eval "$__sr_script"'
    body = f"bash -c {shlex.quote(inner)} {shlex.quote('sparkrun-' + script.name)} {size}"
    if timeout is None:
        return f"exec {body}"
    # `timeout` runs the script in its own process group and signals the whole group: a step that runs out of time
    # ends on the host too, instead of running on after sparkrun gave up.
    return f"exec timeout -k {KILL_AFTER_S} {max(1, round(timeout))} {body}"


@dataclass(frozen=True)
class Result:
    host: str
    script: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    transport_error: str | None = None  # the script never ran or its connection broke (SSH's own failure)
    timed_out: float | None = None  # the timeout (s) that ended it
    _output: list[Output] = field(default_factory=list, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.transport_error is None and self.timed_out is None

    @property
    def output(self) -> Output:
        if not self._output:
            self._output.append(parse_output(self.stdout))
        return self._output[0]

    def failure(self) -> tuple[str, str]:
        """(step, cause) for an error message: the script's own `fail` event, else what ended it, else stderr."""
        fail = self.output.last("fail")
        if fail:
            step, _, cause = fail.partition(" ")
            return step, cause or "failed"
        if self.timed_out is not None:
            return self.script, f"no answer within {self.timed_out:.0f}s (stopped it on the host)"
        if self.transport_error:
            return self.script, self.transport_error
        if self.returncode == SHORT_SCRIPT:
            return self.script, "the connection broke while sending the script"
        tail = [line for line in self.stderr.strip().splitlines() if line.strip()][-1:]
        return self.script, f"exited with status {self.returncode}" + (f": {tail[0]}" if tail else "")


@dataclass(frozen=True)
class PipeResult:
    source: Result
    sink: Result

    @property
    def ok(self) -> bool:
        return self.source.ok and self.sink.ok


@dataclass(frozen=True)
class Direct:
    """Pipe host to host: the source host connects to the sink itself at `address` (e.g. its CX7 address)."""

    address: str


class Stream(Protocol):
    host: Host
    script: Script

    def __iter__(self) -> Iterator[str]: ...
    def stop(self) -> None: ...
    def result(self) -> Result: ...


class Channel(Protocol):
    """A running script whose stdin and stdout are byte streams (the script text was already sent)."""

    stdin: IO[bytes]
    stdout: IO[bytes]

    def result(self) -> Result: ...


class Transport(Protocol):
    calls: list[tuple[str, str, float]]  # (host, script, seconds) per finished round trip, for -v and benches

    def run(self, host: Host, script: Script, *, timeout: float | None = None) -> Result: ...
    def run_many(self, jobs: Sequence[tuple[Host, Script]], *, timeout: float | None = None) -> list[Result]: ...
    def stream(self, host: Host, script: Script, *, timeout: float | None = None) -> Stream: ...
    def open(self, host: Host, script: Script, *, timeout: float | None = None) -> Channel: ...
    def pipe(
        self,
        source: tuple[Host, Script],
        sink: tuple[Host, Script],
        *,
        direct: Direct | None = None,
        timeout: float | None = None,
    ) -> PipeResult: ...
    def terminate_all(self) -> None: ...
