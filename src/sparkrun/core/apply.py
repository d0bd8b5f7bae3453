"""The one apply engine: run a `Plan` through a `Transport`, phase by phase, and report through events.

- Steps of a phase run in parallel (bounded by the transport's `max_parallel`); every step's result is collected
  before the next phase starts, and a phase with a failed step ends the run.
- On a failure, Ctrl-C or SIGTERM (raised as KeyboardInterrupt by the caller's handler): every process still running
  is stopped, then the plan's `undo` steps run on every host (unless `keep_on_failure`), then the error is raised:
  one `HostError` naming host, step and cause (the others as detail lines).
- Streaming steps (`Step.stream`) report their `@sr` lines as `StepProgress` events while they run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from sparkrun.core.events import Cleanup, Emit, PhaseStarted, StepFinished, StepProgress, ignore
from sparkrun.core.plan import Plan, Step
from sparkrun.errors import HostError, SparkrunError
from sparkrun.transport.base import Result, Transport
from sparkrun.transport.protocol import parse_event
from sparkrun.transport.ssh import ssh_hint

ErrorFor = Callable[[Step, Result], HostError]
UNDO_TIMEOUT_S = 120.0


def host_error(step: Step, result: Result) -> HostError:
    """The default translation of a failed step: `host: step: cause`, the log tail as detail, SSH hints."""
    name, cause = result.failure()
    hint = ssh_hint(cause) if result.transport_error else None
    return HostError(result.host, name, cause, hint=hint, detail=result.output.blocks.get("log"))


def combine(errors: Sequence[HostError]) -> HostError:
    """The first error, with the others listed under it."""
    first = errors[0]
    if len(errors) > 1:
        others = "\n".join(str(e) for e in errors[1:])
        first.detail = ((first.detail + "\n") if first.detail else "") + f"also failed:\n{others}"
    return first


def _run_step(transport: Transport, step: Step, emit: Emit) -> Result:
    script = step.render()
    if not step.stream:
        return transport.run(step.host, script, timeout=step.timeout)
    stream = transport.stream(step.host, script, timeout=step.timeout)
    for line in stream:
        event = parse_event(line)
        if event is not None:
            emit(StepProgress(step, *event))
    return stream.result()


def run_phase(transport: Transport, steps: Sequence[Step], emit: Emit = ignore) -> list[Result]:
    """Run steps in parallel and return their results in order (every step finishes first)."""
    if len(steps) == 1:
        return [_run_step(transport, steps[0], emit)]
    limit = max(1, min(getattr(transport, "max_parallel", 16), len(steps)))
    with ThreadPoolExecutor(max_workers=limit) as pool:
        futures = [pool.submit(_run_step, transport, step, emit) for step in steps]
        try:
            return [f.result() for f in futures]
        except BaseException:
            transport.terminate_all()
            raise


def undo(plan: Plan, transport: Transport, emit: Emit, reason: str) -> list[str]:
    """Run the plan's undo steps on every host; returns `host: cause` for each that failed."""
    if not plan.undo:
        return []
    results = run_phase(transport, plan.undo)
    failed = [f"{r.host}: {r.failure()[1]}" for r in results if not r.ok]
    emit(Cleanup(tuple(s.host.address for s in plan.undo), reason, tuple(failed)))
    return failed


def apply(
    plan: Plan,
    transport: Transport,
    *,
    emit: Emit = ignore,
    error_for: ErrorFor = host_error,
    keep_on_failure: bool = False,
) -> list[StepFinished]:
    """Run `plan`; return one `StepFinished` per step. Raises the first failure (after the undo) or re-raises an
    interrupt (after the undo)."""
    finished: list[StepFinished] = []
    try:
        for phase, steps in plan.phases():
            emit(PhaseStarted(phase, tuple(steps)))
            live = [s for s in steps if not s.noop]
            for step in steps:
                if step.noop:
                    finished.append(StepFinished(step, None))
                    emit(finished[-1])
            errors: list[HostError] = []
            for step, result in zip(live, run_phase(transport, live, emit), strict=True):
                finished.append(StepFinished(step, result))
                emit(finished[-1])
                if not result.ok:
                    errors.append(error_for(step, result))
            if errors:
                raise combine(errors)
    except (SparkrunError, KeyboardInterrupt) as exc:
        transport.terminate_all()
        if not keep_on_failure:
            undo(plan, transport, emit, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
        raise
    return finished
