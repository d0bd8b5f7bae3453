"""`FakeTransport`: an in-memory transport for tests of planners and the apply engine (no hosts, no processes).

It records every script it is given (`scripts`) and answers from handlers keyed by script name:

    fake = FakeTransport({"probe": events(("docker", "ok 27.0"))})
    fake.on("launch", lambda host, script: events(("fail", "docker-run boom")) if host.address == "b" else "")
    apply(plan, fake, ...)
    assert [s.name for _h, s in fake.scripts] == [...]

A handler returns the script's stdout (str), a full `Result`, or None (success, no output); it may raise (e.g.
KeyboardInterrupt, to test interrupts). Unknown scripts succeed with no output. It ships with sparkrun so runtime and
executor plugins can test against the same contract.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import IO

from sparkrun.hosts import Host
from sparkrun.shell import Script
from sparkrun.transport.base import Direct, PipeResult, Result

Answer = str | Result | None
Handler = Callable[[Host, Script], Answer]


def events(*items: tuple[str, str], blocks: Mapping[str, str] | None = None) -> str:
    """Protocol text (`@sr KEY VALUE` lines, `@sr-begin/-end` blocks) as a host script would print it."""
    lines = [f"@sr {key} {value}" for key, value in items]
    for name, text in (blocks or {}).items():
        lines += [f"@sr-begin {name}", *text.splitlines(), f"@sr-end {name}"]
    return "\n".join(lines) + ("\n" if lines else "")


class FakeStream:
    def __init__(self, host: Host, script: Script, result: Result) -> None:
        self.host = host
        self.script = script
        self._result = result
        self.stopped = False

    def __iter__(self) -> Iterator[str]:
        yield from self._result.stdout.splitlines()

    def stop(self) -> None:
        self.stopped = True

    def result(self) -> Result:
        return self._result


class FakeChannel:
    """stdin collects what is written; stdout holds the handler's answer as bytes."""

    def __init__(self, result: Result, data: bytes = b"") -> None:
        self._result = result
        self.stdin: IO[bytes] = io.BytesIO()
        self.stdout: IO[bytes] = io.BytesIO(data or result.stdout.encode())
        self.written = b""

    def result(self) -> Result:
        stdin = self.stdin
        if isinstance(stdin, io.BytesIO) and not stdin.closed:
            self.written = stdin.getvalue()
        return self._result


class FakeTransport:
    def __init__(self, handlers: Mapping[str, Handler | str] | None = None) -> None:
        self.handlers: dict[str, Handler | str] = dict(handlers or {})
        self.calls: list[tuple[str, str, float]] = []
        self.scripts: list[tuple[Host, Script]] = []
        self.timeouts: list[float | None] = []
        self.terminated = 0

    def on(self, name: str, handler: Handler | str) -> None:
        self.handlers[name] = handler

    def ran(self, name: str) -> list[str]:
        """Hosts that ran script `name`, in order."""
        return [host.address for host, script in self.scripts if script.name == name]

    def _answer(self, host: Host, script: Script, timeout: float | None = None) -> Result:
        self.scripts.append((host, script))
        self.timeouts.append(timeout)
        self.calls.append((host.address, script.name, 0.0))
        handler = self.handlers.get(script.name)
        answer = handler(host, script) if callable(handler) else handler
        if isinstance(answer, Result):
            return answer
        stdout = answer or ""
        failed = "\n@sr fail " in f"\n{stdout}"
        return Result(host.address, script.name, 1 if failed else 0, stdout, "", 0.0)

    def run(self, host: Host, script: Script, *, timeout: float | None = None) -> Result:
        return self._answer(host, script, timeout)

    def run_many(self, jobs: Sequence[tuple[Host, Script]], *, timeout: float | None = None) -> list[Result]:
        return [self._answer(host, script, timeout) for host, script in jobs]

    def stream(self, host: Host, script: Script, *, timeout: float | None = None) -> FakeStream:
        return FakeStream(host, script, self._answer(host, script, timeout))

    def open(self, host: Host, script: Script, *, timeout: float | None = None) -> FakeChannel:
        return FakeChannel(self._answer(host, script, timeout))

    def pipe(
        self,
        source: tuple[Host, Script],
        sink: tuple[Host, Script],
        *,
        direct: Direct | None = None,
        timeout: float | None = None,
    ) -> PipeResult:
        src = self._answer(*source, timeout)
        dst = self._answer(*sink, timeout)
        return PipeResult(source=src, sink=dst)

    def terminate_all(self) -> None:
        self.terminated += 1
