"""Partition-safe launch: nothing a failed launch started outlives it, even on a host sparkrun cannot reach any more,
and even when this machine dies (Ctrl-C, SIGKILL, a closed laptop lid).

The apply engine's `undo` removes a failed launch's containers on every host it can still reach. For the others, each
host guards itself with a **lease**:

- phase `lease` (after `replace`, before the start groups): `lease.sh start` on every job host records the lease in
  `~/.cache/sparkrun/lease/<job>/` (a random token naming this launch, state `active`, its term in seconds, the ports
  the job uses there) and starts `lease_watchdog.sh` detached (`setsid`, no terminal, nothing of the SSH session
  open, output to the lease's `log`). Under a host-wide flock it first refuses a port that another job is starting
  (an active lease) or serving (a head/solo container) on, naming that job.
- while the launch runs, `Heartbeat` renews the lease of every host every `renew_every` seconds over the multiplexed
  SSH connection (one thread per host, so one dead host does not delay the others). `launch.sh` records its process
  group in the lease, and refuses to start a container on a lease that has already ended.
- phase `confirm` (the last one): `lease.sh confirm` on every host; the watchdog sees it and exits.
- the watchdog checks every second. When the lease was not renewed within its term (this machine died, slept or lost
  the host), or `stop.sh` revoked it (a stop, or the undo of a failure), it ends the launch script's process group
  (a pull, a rendezvous wait, a hook still running there), removes every container of the job on its host, and keeps
  sweeping until none has appeared for 5 s; while dockerd is unreachable it retries instead of giving up.

The bound, from the moment the control machine goes silent to no container of the job on the host: at most
`seconds` + 1 s (the watchdog's poll) + the time `docker rm -f` takes. `--no-rm` runs without a lease (its point is to
keep a failed launch's containers), and `--foreground` holds the lease (no confirm) for as long as it follows the
logs: such a job lives exactly as long as the command.

While it renews, the heartbeat also notices a host that has been silent for longer than the lease (its watchdog has
acted by now) and ends the running steps at once (`on_lost`), instead of letting the launch wait for an engine that
cannot come up; `explain` then names that host as the cause.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from sparkrun.config import UserConfig
from sparkrun.core.events import Cleanup, Emit, Event, Note, StepFinished
from sparkrun.core.plan import Step
from sparkrun.errors import ConfigError, HostError
from sparkrun.hosts import Host
from sparkrun.launch.planner import JobPlan
from sparkrun.shell import ParamValue, Script, render_script, script_text
from sparkrun.transport.base import Channel, Direct, PipeResult, Result, Stream, Transport
from sparkrun.transport.ssh import ssh_hint

LEASE_ENV = "SPARKRUN_LEASE_SECONDS"
DEFAULT_LEASE_SECONDS = 20
MIN_LEASE_SECONDS = 3
MAX_LEASE_SECONDS = 3600
LEASE_PHASE = "lease"
CONFIRM_PHASE = "confirm"
# What a host may answer to a renewal, besides "active": the lease is over there.
ENDED = {"expired", "revoked", "superseded", "missing", "confirmed", "stopped"}


def lease_seconds(config: UserConfig) -> int:
    """The lease term: `$SPARKRUN_LEASE_SECONDS`, else `lease_seconds` in config.yaml, else 20."""
    raw = os.environ.get(LEASE_ENV) or config.get("lease_seconds")
    where = f"${LEASE_ENV}" if os.environ.get(LEASE_ENV) else f"{config.path}: lease_seconds"
    if raw is None or raw == "":
        return DEFAULT_LEASE_SECONDS
    try:
        value = int(float(str(raw)))
    except ValueError:
        raise ConfigError(f"{where}: expected a number of seconds, got {raw!r}") from None
    if not MIN_LEASE_SECONDS <= value <= MAX_LEASE_SECONDS:
        raise ConfigError(f"{where}: must be between {MIN_LEASE_SECONDS} and {MAX_LEASE_SECONDS} seconds, got {value}")
    return value


@dataclass(frozen=True)
class Lease:
    job: str
    token: str = field(repr=False)
    seconds: int = DEFAULT_LEASE_SECONDS

    @classmethod
    def new(cls, job: str, seconds: int) -> Lease:
        return cls(job, secrets.token_hex(8), seconds)

    @property
    def renew_every(self) -> float:
        return max(1.0, self.seconds / 5)

    @property
    def bound(self) -> int:
        """Seconds from the last renewal to no container left on a host (the watchdog's poll and `docker rm`)."""
        return self.seconds + 3

    def values(self, action: str) -> dict[str, ParamValue]:
        return {"ACTION": action, "JOB_ID": self.job, "LEASE_TOKEN": self.token}

    def renew_script(self) -> Script:
        return render_script("lease", self.values("renew"))


def start_steps(lease: Lease, job: JobPlan) -> tuple[Step, ...]:
    """`lease.sh start` on each host of the job, with the ports its container there uses."""
    steps = []
    for rank in job.ranks:
        values = {
            **lease.values("start"),
            "LEASE_SECONDS": str(lease.seconds),
            "PORTS": [str(p) for p in sorted({p for p in (rank.spec.api_port, rank.spec.wait_port) if p})],
            "RECIPE": job.recipe_name,
            "WATCHDOG": script_text("lease_watchdog.sh"),
        }
        summary = (
            f"lease on {rank.host.address}: a watchdog there removes the job if this machine stops renewing it "
            f"for {lease.seconds}s"
        )
        steps.append(Step(rank.host, "lease", values, summary, LEASE_PHASE, timeout=60.0))
    return tuple(steps)


def confirm_steps(lease: Lease, hosts: Sequence[Host]) -> tuple[Step, ...]:
    values = lease.values("confirm")
    return tuple(
        Step(h, "lease", values, f"confirm the launch on {h.address} (its watchdog stands down)", CONFIRM_PHASE)
        for h in hosts
    )


@dataclass
class HostBeat:
    """What the heartbeat knows about one host's lease."""

    host: Host
    last_ok: float  # monotonic time of the last renewal the host accepted (or of the lease's start)
    state: str = "active"  # the host's last answer, or "unreachable"
    error: str = ""  # why the last renewal did not reach the host


class Heartbeat:
    """Renews the lease on every armed host until stopped; `arm(host)` once `lease.sh start` succeeded there."""

    def __init__(
        self,
        transport: Transport,
        lease: Lease,
        *,
        on_lost: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = transport
        self.lease = lease
        self.on_lost = on_lost
        self.clock = clock
        self.beats: dict[str, HostBeat] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.frozen = False

    def arm(self, host: Host) -> None:
        with self._lock:
            if self._stop.is_set() or host.address in self.beats:
                return
            beat = HostBeat(host, self.clock())
            self.beats[host.address] = beat
            thread = threading.Thread(target=self._run, args=(beat,), name=f"lease {host.address}", daemon=True)
            self._threads.append(thread)
        thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(timeout=self.lease.renew_every + 1)

    def _run(self, beat: HostBeat) -> None:
        script = self.lease.renew_script()
        timeout = max(3.0, self.lease.renew_every * 2)
        while not self._stop.wait(self.lease.renew_every):
            self.record(beat, self.transport.run(beat.host, script, timeout=timeout))
            if self.lost() and self.on_lost is not None and not self._stop.is_set():
                self.on_lost()  # the launch cannot succeed any more: end its running steps now

    def record(self, beat: HostBeat, result: Result) -> None:
        """Take in one renewal's result. A renewal cut short on this machine (the launch is being torn down) or a
        failing `lease.sh` says nothing about the host, and changes nothing."""
        if self.frozen:
            return
        if result.ok:
            beat.state = (result.output.last("lease") or "missing").split(" ")[0]
            beat.error = ""
            if beat.state == "active":
                beat.last_ok = self.clock()
        elif result.transport_error or result.timed_out is not None:
            beat.state = "unreachable"
            beat.error = result.failure()[1]

    def freeze(self) -> None:
        """Keep what is known now and stop renewing: the launch is being torn down (its undo revokes the leases)."""
        self.frozen = True
        self._stop.set()

    def silent_for(self, beat: HostBeat) -> float:
        return self.clock() - beat.last_ok

    def lost(self) -> list[HostBeat]:
        """Hosts whose lease is over: they said so, or they have been silent for longer than the lease."""
        return [
            b
            for b in self.beats.values()
            if b.state in ENDED or (b.state == "unreachable" and self.silent_for(b) > self.lease.seconds)
        ]

    def troubled(self) -> list[HostBeat]:
        """Lost hosts first, then hosts whose last renewal did not get through."""
        lost = self.lost()
        return lost + [b for b in self.beats.values() if b.state == "unreachable" and b not in lost]

    def explain(self, error: HostError) -> HostError:
        """The error to report for a failed launch. When the heartbeat lost a host, that is the cause and the failed
        step a consequence (kept as detail); when the failed step already names SSH trouble on a host the heartbeat
        lost too, the error stays and says how that host cleans up."""
        troubled = self.troubled()
        if not troubled:
            return error
        cleanup = (
            f"nothing to clean up by hand: the host's lease watchdog removes the job's containers within "
            f"{self.lease.bound}s of the last renewal"
        )
        same = next((b for b in troubled if b.host.address == error.host), None)
        if same is not None and (same.state == "unreachable" or error.step == "lease"):
            error.hint = f"{error.hint}; {cleanup}" if error.hint else cleanup
            return error
        beat = troubled[0]
        hint = f"{ssh_hint(beat.error)}; {cleanup}" if beat.state == "unreachable" else cleanup
        detail = f"then: {error}" + (f"\n{error.detail}" if error.detail else "")
        return HostError(beat.host.address, "lease", self.cause(beat), hint=hint, detail=detail)

    def cause(self, beat: HostBeat) -> str:
        silent = self.silent_for(beat)
        if beat.state == "unreachable":
            return (
                f"no contact for {silent:.0f}s ({beat.error}); the host's watchdog removes the job's containers "
                f"when the {self.lease.seconds}s lease runs out"
            )
        return {
            "expired": f"the launch lease expired (no renewal for over {self.lease.seconds}s: was this machine asleep "
            "or cut off?); the host's watchdog removed the job's containers",
            "revoked": "the job was stopped on this host while it was starting (its lease was revoked)",
            "stopped": "the job was stopped on this host while it was starting (its lease was revoked)",
            "superseded": "another launch of the same job took over this host",
        }.get(beat.state, f"the launch lease is gone from this host ({beat.state})")


class LeasedTransport:
    """The transport a leased launch runs on: itself, except that tearing the launch down (`terminate_all`, which
    the apply engine calls before its undo) first freezes the heartbeat, so the undo's own revocations are not
    mistaken for a lost host."""

    def __init__(self, transport: Transport, heartbeat: Heartbeat) -> None:
        self.inner = transport
        self.heartbeat = heartbeat
        self.calls = transport.calls
        self.max_parallel = getattr(transport, "max_parallel", 16)

    def run(self, host: Host, script: Script, *, timeout: float | None = None) -> Result:
        return self.inner.run(host, script, timeout=timeout)

    def run_many(self, jobs: Sequence[tuple[Host, Script]], *, timeout: float | None = None) -> list[Result]:
        return self.inner.run_many(jobs, timeout=timeout)

    def stream(self, host: Host, script: Script, *, timeout: float | None = None) -> Stream:
        return self.inner.stream(host, script, timeout=timeout)

    def open(self, host: Host, script: Script, *, timeout: float | None = None) -> Channel:
        return self.inner.open(host, script, timeout=timeout)

    def pipe(
        self,
        source: tuple[Host, Script],
        sink: tuple[Host, Script],
        *,
        direct: Direct | None = None,
        timeout: float | None = None,
    ) -> PipeResult:
        return self.inner.pipe(source, sink, direct=direct, timeout=timeout)

    def terminate_all(self) -> None:
        self.heartbeat.freeze()
        self.inner.terminate_all()


@contextmanager
def renewing(heartbeat: Heartbeat | None, *, hold: bool = False) -> Iterator[None]:
    """Keep renewing while the block runs (and after it, when `hold`); a launch that fails is reported through
    `Heartbeat.explain`, which names a host the heartbeat lost as the cause."""
    if heartbeat is None:
        yield
        return
    try:
        yield
    except HostError as exc:
        heartbeat.stop()
        raise heartbeat.explain(exc) from exc
    except BaseException:
        heartbeat.stop()
        raise
    if not hold:
        heartbeat.stop()


def lease_events(heartbeat: Heartbeat | None, event: Event, emit: Emit) -> None:
    """Follow a launch's events: arm the heartbeat on each host whose lease started; after a cleanup that could not
    reach some hosts, tell how those clean up by themselves."""
    if heartbeat is None:
        return
    if isinstance(event, StepFinished) and event.step.phase == LEASE_PHASE and event.ok:
        heartbeat.arm(event.step.host)
    elif isinstance(event, Cleanup) and event.failed:
        where = ", ".join(line.split(":", 1)[0] for line in event.failed)
        emit(
            Note(
                f"{where}: the host's lease watchdog removes the job's containers there by itself, within "
                f"{heartbeat.lease.bound}s of the last renewal (no connection needed)"
            )
        )
