"""The parts of `sparkrun run` behind the Click command: build the request, show a plan, launch with signal
handling, follow the logs. Everything here calls the core API and renders its results; nothing runs on hosts here.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import click

from sparkrun.api import RecipeInput, RunResult, Target
from sparkrun.cli.context import AppContext
from sparkrun.cli.plan_view import plan_json, plan_markdown, plan_text
from sparkrun.errors import Interrupted


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


def launch(
    app: AppContext, given: RecipeInput, where: Target, *, ensure: bool, wait_ready: bool, keep: bool
) -> RunResult:
    """Run with SIGTERM treated like Ctrl-C: the core removes what it started, then this exits 130."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        confirm = click.confirm if sys.stdin.isatty() else None
        return app.session.run(
            given, where, ensure=ensure, wait_ready=wait_ready, keep_on_failure=keep, confirm=confirm
        )
    except KeyboardInterrupt:
        kept = "the job's containers were kept (--no-rm)" if keep else "the job's containers were removed"
        raise Interrupted(f"interrupted: {kept}", hint=None) from None
    finally:
        app.console.finish()
        signal.signal(signal.SIGTERM, previous)


def follow(app: AppContext, result: RunResult, *, stop_on_interrupt: bool) -> None:
    job = result.job
    try:
        app.session.follow(job, app.console.out)
    except KeyboardInterrupt:
        if stop_on_interrupt:
            app.console.info(f"stopping job {job.job}")
            app.session.stop(Target(), job.job)
        else:
            app.console.info(f"detached; job {job.job} keeps running (sparkrun stop {job.job})")
