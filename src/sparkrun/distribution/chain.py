"""Running a copy: the bytes go from the source down the route's hops, through the transport's byte streams only
(`stream`/`open`: no Python buffer holds the data beyond one 1 MiB chunk in relay mode).

- Chain, source is a host: the source runs the send script, which SSHes to hop 1 itself and first sends the hop
  scripts (each hop boots from the head of its stdin and forwards the rest, `model_recv.sh`); the whole chain's events
  come back on the source's stdout (`transport.stream`).
- Chain, source is this machine: the send script runs here (`transport.open` on a local host), its stdout is spliced
  into hop 1's stdin (`transport.open`), hop 1's stdout carries the chain's events.
- Relay (no SSH between hosts): the source's stream is read here and written to every receiver (a star).

A hop whose sender went away waits forever for input: after the copy, hops that started but never ended are stopped
(`sync_stop.sh`, by process group) before anything else writes to their cache.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Protocol

from sparkrun.core.events import Emit, TransferProgress
from sparkrun.distribution.route import THIS_MACHINE, Route, hop_ssh
from sparkrun.hosts import Host
from sparkrun.shell import ParamValue, Script, render_script
from sparkrun.transport.base import Channel, Transport, boot_command
from sparkrun.transport.protocol import parse_event

LOCAL = Host("localhost", local=True)
CHUNK = 1 << 20
STALL_S = 180.0  # no event from any hop for this long: the copy is stuck; end it


class Progress(Protocol):
    """What a tracker reports progress of: a name and each host's expected bytes."""

    @property
    def item(self) -> str: ...

    def total(self, host: str) -> int: ...


class Payload(Progress, Protocol):
    """What is being copied: the scripts of its two ends (`shell/chain_lib.sh` names them) and the values that are
    the payload's own; `send_script` and `recv_script` add the chain's (who this is, the next hop, the hop scripts)."""

    @property
    def timeout(self) -> float: ...

    @property
    def send_name(self) -> str: ...  # e.g. "model_send"

    @property
    def recv_name(self) -> str: ...  # e.g. "model_recv", run with MODE=stream

    def send_values(self) -> dict[str, ParamValue]: ...

    def recv_values(self, host: Host) -> dict[str, ParamValue]: ...


@dataclass(frozen=True)
class NextHop:
    """Where a chain script sends the stream on: the command that reaches the next hop over SSH from this host, the
    boot command run there, its name (for events). `NextHop()`: nowhere (the last hop; a source on stdout)."""

    ssh: tuple[str, ...] = ()
    command: str = ""
    name: str = ""

    def values(self) -> dict[str, ParamValue]:
        return {"NEXT_SSH": list(self.ssh), "NEXT_COMMAND": self.command, "NEXT_NAME": self.name}


def send_script(payload: Payload, source: Host | None, *, hops: Sequence[Script], nxt: NextHop) -> Script:
    """The source's script (`source` None: this machine): the scripts of `hops`, then the payload's stream. Without a
    next hop its stdout is the stream, so its events go to stderr."""
    values: dict[str, ParamValue] = {
        "NAME": source.address if source is not None else THIS_MACHINE,
        **payload.send_values(),
        "HOP_SCRIPTS": [s.text for s in hops],
        **nxt.values(),
    }
    return render_script(payload.send_name, values, events_to_stderr=not nxt.ssh)


def recv_script(payload: Payload, host: Host, *, skip: int, nxt: NextHop) -> Script:
    """A hop's script: skip the `skip` bytes of the scripts after it, take its share, forward all to `nxt`."""
    values = {"MODE": "stream", "NAME": host.address, **payload.recv_values(host), "SKIP_BYTES": str(skip)}
    return render_script(payload.recv_name, {**values, **nxt.values()})


@dataclass
class HopReport:
    host: str
    written: int = 0
    received: int = 0
    pgid: str = ""
    ended: bool = False
    files: dict[int, str] = field(default_factory=dict)  # file index -> done / bad / gap / error
    error: str | None = None  # this host failed (disk full, load failed, ...)
    lost: str | None = None  # the hop before it could not reach it


class Tracker:
    """Reads the copy's event lines (from any thread); emits progress; one `HopReport` per receiving host."""

    def __init__(self, payload: Progress, hosts: Iterable[str], emit: Emit) -> None:
        self.payload = payload
        self.emit = emit
        self.hops = {h: HopReport(h) for h in hosts}
        self.source_error: str | None = None
        self.last_event = time.monotonic()
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        event = parse_event(text.rstrip("\n"))
        if event is None:
            return
        key, value = event
        with self._lock:
            self.last_event = time.monotonic()
            self._on(key, value.split(" "))

    def _on(self, key: str, words: list[str]) -> None:
        hop = self.hops.get(words[0]) if words else None
        if key == "send-fail" or (key == "fail" and hop is None):
            self.source_error = " ".join(words[1:]) if key == "send-fail" else " ".join(words)
        elif key == "hop-next" and len(words) >= 3:
            lost = self.hops.get(words[1])
            if lost is not None and not lost.ended:
                lost.lost = f"{words[0]} could not reach it: " + (" ".join(words[3:]) or f"status {words[2]}")
        elif hop is None:
            return
        elif key == "hop-start" and len(words) > 1:
            hop.pgid = words[1]
        elif key in ("hop-progress", "hop-end") and len(words) > 2:
            hop.written, hop.received = int(words[1]), int(words[2])
            hop.ended = hop.ended or key == "hop-end"
            self.emit(TransferProgress(hop.host, self.payload.item, hop.written, self.payload.total(hop.host)))
        elif key == "hop-file" and len(words) > 2:
            hop.files[int(words[1])] = words[2]
        elif key == "hop-fail":
            hop.error = hop.error or " ".join(words[1:])

    def pump(self, lines: Iterable[bytes | str]) -> None:
        for raw in lines:
            self.line(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw)

    def orphans(self) -> list[HopReport]:
        return [h for h in self.hops.values() if h.pgid and not h.ended]


def _splice(src: IO[bytes], dst: IO[bytes]) -> None:
    """src -> dst in the kernel where it can (Linux splice), else 1 MiB at a time; closes dst at the end."""
    splice = getattr(os, "splice", None)
    try:
        if splice is not None and hasattr(src, "fileno") and hasattr(dst, "fileno"):
            while splice(src.fileno(), dst.fileno(), CHUNK):
                pass
        else:
            while chunk := src.read(CHUNK):
                dst.write(chunk)
    except (OSError, ValueError):
        pass  # the reader went away; its own result says why
    finally:
        with contextlib.suppress(OSError):
            dst.close()


def _fan_out(src: IO[bytes], sinks: Sequence[IO[bytes]]) -> None:
    """src -> every sink (relay); a sink that goes away is dropped, the others go on."""
    live = list(sinks)
    read = getattr(src, "read1", src.read)
    try:
        while live and (chunk := read(CHUNK)):
            for sink in list(live):
                try:
                    sink.write(chunk)
                    sink.flush()
                except (OSError, ValueError):
                    live.remove(sink)
    finally:
        for sink in sinks:
            with contextlib.suppress(OSError, ValueError):
                sink.close()


def _scripts(payload: Payload, route: Route, transport: Transport) -> list[Script]:
    """Each hop's receive script, last first (a hop's script names the next hop's boot command and the bytes of the
    scripts after it, which it skips)."""
    hops = route.hops
    scripts: list[Script] = []
    for j in reversed(range(len(hops))):
        onward = NextHop()
        if scripts:
            nxt = hops[j + 1]
            ssh = hop_ssh(transport, hops[j].host, nxt.host, nxt.address)
            if ssh is None:
                raise RuntimeError("this transport cannot go host to host")
            onward = NextHop(tuple(ssh), boot_command(scripts[0], payload.timeout), nxt.host.address)
        script = recv_script(payload, hops[j].host, skip=sum(len(s.framed()) for s in scripts), nxt=onward)
        scripts.insert(0, script)
    return scripts


def _watch(tracker: Tracker, transport: Transport, done: threading.Event, stall: float) -> threading.Thread:
    def watch() -> None:
        while not done.wait(2.0):
            if time.monotonic() - tracker.last_event > stall:
                tracker.source_error = f"no progress for {stall:.0f}s: stopped the copy"
                transport.terminate_all()
                return

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _chain_from_host(payload: Payload, route: Route, transport: Transport, tracker: Tracker) -> None:
    assert route.source is not None
    scripts = _scripts(payload, route, transport)
    first = route.hops[0]
    ssh = hop_ssh(transport, route.source, first.host, first.address)
    onward = NextHop(tuple(ssh or ()), boot_command(scripts[0], payload.timeout), first.host.address)
    send = send_script(payload, route.source, hops=scripts, nxt=onward)
    stream = transport.stream(route.source, send, timeout=payload.timeout)
    tracker.pump(stream)
    result = stream.result()
    lost_next = any(h.lost for h in tracker.hops.values())  # the source is fine; its link to the first hop broke
    if not result.ok and tracker.source_error is None and not lost_next:
        tracker.source_error = result.failure()[1]


def _open(transport: Transport, host: Host, script: Script, timeout: float, tracker: Tracker) -> Channel | None:
    """A channel to `host`, or None (and the host's failure recorded) when its connection died at once."""
    try:
        return transport.open(host, script, timeout=timeout)
    except OSError as exc:
        hop = tracker.hops.get(host.address)
        if hop is not None:
            hop.error = hop.error or f"the connection failed at once ({exc.strerror or exc})"
        else:
            tracker.source_error = f"{host.address}: the connection failed at once ({exc.strerror or exc})"
        return None


def _chain_from_here(payload: Payload, route: Route, transport: Transport, tracker: Tracker) -> None:
    scripts = _scripts(payload, route, transport)
    send = send_script(payload, None, hops=scripts[1:], nxt=NextHop())
    source = transport.open(LOCAL, send, timeout=payload.timeout)
    source.stdin.close()
    first = _open(transport, route.hops[0].host, scripts[0], payload.timeout, tracker)
    if first is None:
        source.stdout.close()
        _finish(tracker, source)
        return
    mover = threading.Thread(target=_splice, args=(source.stdout, first.stdin), daemon=True)
    mover.start()
    tracker.pump(first.stdout)
    mover.join()
    _finish(tracker, source, first)


def _finish(tracker: Tracker, source: Channel, *receivers: Channel) -> None:
    for channel in receivers:
        with contextlib.suppress(OSError, ValueError):
            channel.result()
    result = source.result()
    tracker.pump(result.stderr.splitlines())  # a stdout-mode source reports on stderr
    if not result.ok and tracker.source_error is None:
        tracker.source_error = result.failure()[1]


def _relay(payload: Payload, route: Route, transport: Transport, tracker: Tracker) -> None:
    send = send_script(payload, route.source, hops=(), nxt=NextHop())
    source = _open(transport, route.source or LOCAL, send, payload.timeout, tracker)
    if source is None:
        return
    source.stdin.close()
    hops = []
    for link in route.hops:
        script = recv_script(payload, link.host, skip=0, nxt=NextHop())
        channel = _open(transport, link.host, script, payload.timeout, tracker)
        if channel is not None:
            hops.append(channel)
    readers = [threading.Thread(target=tracker.pump, args=(h.stdout,), daemon=True) for h in hops]
    for reader in readers:
        reader.start()
    _fan_out(source.stdout, [h.stdin for h in hops])
    for reader in readers:
        reader.join()
    _finish(tracker, source, *hops)


def run_copy(payload: Payload, route: Route, transport: Transport, emit: Emit, *, stall: float = STALL_S) -> Tracker:
    """Copy down `route`; returns what each hop reported. Hops left waiting by a lost sender are stopped."""
    tracker = Tracker(payload, [h.host.address for h in route.hops], emit)
    done = threading.Event()
    watcher = _watch(tracker, transport, done, stall)
    runner: Callable[[Payload, Route, Transport, Tracker], None] = _relay
    if not route.relay:
        runner = _chain_from_host if route.source is not None else _chain_from_here
    try:
        runner(payload, route, transport, tracker)
    except BaseException:
        transport.terminate_all()
        raise
    finally:
        done.set()
        watcher.join()
    stop_orphans(tracker, route, transport)
    return tracker


def stop_orphans(tracker: Tracker, route: Route, transport: Transport) -> None:
    by_name = {h.host.address: h.host for h in route.hops}
    for hop in tracker.orphans():
        result = transport.run(by_name[hop.host], render_script("sync_stop", {"PGID": hop.pgid}), timeout=30)
        hop.lost = hop.lost or "the host before it stopped sending"
        if not result.ok:
            hop.error = hop.error or f"unreachable: {result.failure()[1]}"
