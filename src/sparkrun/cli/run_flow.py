"""The parts of `sparkrun run` behind the Click command: build the request, show a plan, launch with signal
handling, follow the logs. Everything here calls the core API and renders its results; nothing runs on hosts here.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import click

from sparkrun.api import RecipeInput, RunResult, Target
from sparkrun.cli.context import AppContext
from sparkrun.cli.plan_view import plan_json, plan_markdown, plan_text
from sparkrun.errors import HostError, Interrupted, SparkrunError


def recipe_input(ref: str, extra_args: Sequence[str], values: Mapping[str, Any], keys: Sequence[str]) -> RecipeInput:
    return RecipeInput(
        ref=ref,
        values={key: values[key] for key in keys},
        options=tuple(values.get("options") or ()),
        image=values.get("image"),
        env=tuple(values.get("env") or ()),
        labels=tuple(values.get("labels") or ()),
        extra_args=tuple(extra_args),
        trust=bool(values.get("trust")),
        offline=bool(values.get("offline")),
        sync=not values.get("no_sync"),
        force=bool(values.get("force")),
    )


def show_plan(app: AppContext, given: RecipeInput, where: Target, *, as_json: bool, markdown: bool) -> None:
    plan = app.session.plan_run(given, where)
    if as_json:
        app.console.json(plan_json(plan))
    elif markdown:
        app.console.out(plan_markdown(plan))
    else:
        app.console.out(plan_text(plan))


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


# Like Ctrl-C while launching or following: SIGTERM, and SIGHUP (the terminal went away).
SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextmanager
def _signals_interrupt() -> Iterator[None]:
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def launch(
    app: AppContext, given: RecipeInput, where: Target, *, ensure: bool, wait_ready: bool, keep: bool, hold: bool
) -> RunResult:
    """Run with SIGTERM/SIGHUP treated like Ctrl-C: the core removes what it started, then this exits 130.
    `hold` (--foreground): the launch lease stays held while following; the job ends with this command."""
    try:
        with _signals_interrupt():
            confirm = click.confirm if sys.stdin.isatty() else None
            return app.session.run(
                given, where, ensure=ensure, wait_ready=wait_ready, keep_on_failure=keep, confirm=confirm, hold=hold
            )
    except KeyboardInterrupt:
        kept = "the job's containers were kept (--no-rm)" if keep else "the job's containers were removed"
        raise Interrupted(f"interrupted: {kept}", hint=None) from None
    finally:
        app.console.finish()


def follow(app: AppContext, result: RunResult, *, stop_on_interrupt: bool) -> None:
    """Follow the engine's log. `stop_on_interrupt` (--foreground): the job ends with this command: Ctrl-C, a
    signal, the log ending or a lost connection stop it (hosts out of reach: their lease runs out)."""
    job = result.job
    try:
        with _signals_interrupt():
            app.session.follow(job, app.console.out)
        if stop_on_interrupt:
            app.console.info(f"the engine's log ended: stopping job {job.job}")
            _stop(app, result)
    except KeyboardInterrupt:
        if stop_on_interrupt:
            app.console.info(f"stopping job {job.job}")
            _stop(app, result)
        else:
            app.console.info(f"detached; job {job.job} keeps running (sparkrun stop {job.job})")
    except HostError as exc:
        error = result.lease.explain(exc) if result.lease is not None else exc
        if stop_on_interrupt:
            _stop(app, result)
        raise error from None
    finally:
        app.session.release(result)


def _stop(app: AppContext, result: RunResult) -> None:
    """Stop the job on every host that answers; say which did not (their lease runs out)."""
    try:
        app.session.stop(Target(), result.job.job)
    except SparkrunError as exc:
        app.console.warn(f"{exc}: {exc.detail}" if exc.detail else str(exc))
