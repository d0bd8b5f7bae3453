"""`run`: join the recipe layer (resolve, trust, value chain, rendering) to the orchestration layer (plan, apply).

lr, recipe = prepare(app, ref, ...)        # no connection, no network (except fetching a recipe URL)
plan = plan_launch(lr)                      # what --dry-run prints
outcome = run_launch(lr, launcher=...)      # probe → start ranks → readiness → record
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sparkrun.orchestration.hooks import Copy
from sparkrun.orchestration.hosts import HostSelection, split_assignments
from sparkrun.orchestration.plan import LaunchPlan, LaunchRequest, Readiness
from sparkrun.orchestration.scripts import ParamValue
from sparkrun.recipes.model import Recipe

if TYPE_CHECKING:
    from sparkrun.bootstrap import RuntimeRegistry
    from sparkrun.cli.context import AppContext
    from sparkrun.console import Console
    from sparkrun.orchestration.launch import LaunchOutcome

# Credentials forwarded from the control machine's environment when set; they travel in the script's stdin and reach
# the container through a private --env-file, never a command line.
FORWARDED_SECRETS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


@dataclass(frozen=True)
class RunOptions:
    ref: str
    cli_values: Mapping[str, Any]
    options: Sequence[str] = ()
    image: str | None = None
    env: Sequence[str] = ()
    labels: Sequence[str] = ()
    extra_args: Sequence[str] = ()
    trust: bool = False
    offline: bool = False


def prepare(
    runtimes: RuntimeRegistry,
    selection: HostSelection,
    opts: RunOptions,
    *,
    console: Console,
    dry_run: bool,
    interactive: bool,
    confirm: Callable[[str], bool],
) -> tuple[LaunchRequest, Recipe]:
    from sparkrun.orchestration.hooks import HookSet
    from sparkrun.recipes import lookup, render, runtime_choice, trust, value_chain
    from sparkrun.recipes.request import render_request

    recipe = lookup.load_by_ref(opts.ref, notify=lambda message: console.info(f"note: {message}"))
    if dry_run:  # a dry-run runs nothing: show what would need --trust instead of refusing
        gated = [] if (recipe.source.trusted or opts.trust) else trust.gated_items(recipe)
        for item in gated:
            console.warn(f"untrusted recipe: a real run needs --trust for {item.line()}")
    else:
        trust.check_trust(recipe, trust_flag=opts.trust, interactive=interactive, confirm=confirm)
    runtime = runtimes.get(runtime_choice.resolve_runtime_name(recipe))
    settings = value_chain.build_settings(recipe, runtime, opts.cli_values, opts.options)
    env = split_assignments(opts.env, what="-e/--env")
    request = render_request(recipe, runtime, settings, image=opts.image, extra_args=opts.extra_args, env=env)
    hooks = HookSet(
        pre_exec=recipe.pre_exec,
        post_exec=recipe.post_exec,
        post_commands=recipe.post_commands,
        mods=_mods(recipe, console=console, dry_run=dry_run),
        stop_after_post=recipe.stop_after_post,
    )
    secrets = {k: os.environ[k] for k in FORWARDED_SECRETS if os.environ.get(k)}
    lr = LaunchRequest(
        recipe_name=recipe.source.name,
        recipe_source=recipe.source.display,
        runtime=runtime,
        request=request,
        selection=selection,
        secrets=secrets,
        readiness=Readiness.from_recipe(recipe.readiness),
        min_nodes=recipe.min_nodes,
        max_nodes=recipe.max_nodes,
        pull="never" if opts.offline else "missing",
        extra_labels=split_assignments(opts.labels, what="--label"),
        hooks=hooks,
        render_hook=lambda text, values: render.render_hook(text, settings, values),
    )
    return lr, recipe


def _mods(recipe: Recipe, *, console: Console, dry_run: bool) -> tuple[Copy, ...]:
    """The recipe's mod directories, packed. A dry-run shows the plan even when a mod is missing here."""
    from sparkrun.errors import RecipeError
    from sparkrun.orchestration.hooks import pack_mods
    from sparkrun.recipes.mods import find_mod_dirs

    if not recipe.mods:
        return ()
    try:
        return pack_mods(find_mod_dirs(recipe).require())
    except RecipeError as exc:
        if not dry_run:
            raise
        console.warn(f"{exc} (a real run stops here; the plan below leaves the mods out)")
        return ()


@dataclass(frozen=True)
class LaunchFlags:
    dry_run: bool = False
    as_json: bool = False
    follow: bool = False
    foreground: bool = False
    wait_ready: bool = True
    ensure: bool = False
    keep_on_failure: bool = False


def execute(app: AppContext, selection: HostSelection, opts: RunOptions, flags: LaunchFlags) -> None:
    """The whole `run` command: plan (and stop for --dry-run) or launch, report, follow."""
    import signal
    import sys

    import click

    from sparkrun.orchestration.launch import Launcher, run_launch
    from sparkrun.orchestration.plan import plan_launch

    console = app.console
    lr, _recipe = prepare(
        app.runtimes,
        selection,
        opts,
        console=console,
        dry_run=flags.dry_run,
        interactive=sys.stdin.isatty(),
        confirm=click.confirm,
    )
    if flags.dry_run:
        from sparkrun.orchestration.plan_output import plan_json, plan_text

        plan = plan_launch(lr)
        if flags.as_json:
            console.json(plan_json(plan))
        else:
            console.out(plan_text(plan))
        return

    def on_sigterm(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        launcher = Launcher(app.transport, console)
        outcome = run_launch(
            lr,
            launcher=launcher,
            ensure=flags.ensure,
            wait_ready=flags.wait_ready,
            keep_on_failure=flags.keep_on_failure,
        )
    except KeyboardInterrupt:
        from sparkrun.errors import Interrupted

        raise Interrupted("interrupted: the job's containers were removed", hint=None) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    report(console, outcome, as_json=flags.as_json)
    if flags.follow:
        follow_logs(app, outcome.plan, stop_on_interrupt=flags.foreground)


def report(console: Console, outcome: LaunchOutcome, *, as_json: bool) -> None:
    plan = outcome.plan
    if as_json:
        console.json(
            {
                "job": plan.job,
                "recipe": plan.recipe_name,
                "runtime": plan.runtime,
                "hosts": list(plan.topology.hosts),
                "endpoint": plan.endpoint(),
                "served_model_name": plan.served_model_name,
                "ready": outcome.ready,
                "reused": outcome.reused,
                "timings": outcome.timings,
                "notes": outcome.notes,
            }
        )
        return
    state = "already running" if outcome.reused else ("ready" if outcome.ready else "started (readiness not checked)")
    console.out(f"{state}: job {plan.job} ({plan.recipe_name}) on {', '.join(plan.topology.hosts)}")
    console.out(f"endpoint: {plan.endpoint()}  model: {plan.served_model_name}")
    console.out(f"logs: sparkrun logs {plan.job}    stop: sparkrun stop {plan.job}")


def follow_logs(app: AppContext, plan: LaunchPlan, *, stop_on_interrupt: bool) -> None:
    from sparkrun.orchestration.jobs_view import pump_streams, stop_on_hosts
    from sparkrun.orchestration.scripts import render_script

    api = plan.api_rank
    params: dict[str, ParamValue] = {"CONTAINERS": [api.container], "TAIL": "50", "FOLLOW": True, "PREFIX": False}
    stream = app.transport.stream(api.host, render_script("logs", params))
    try:
        pump_streams([stream])
    except KeyboardInterrupt:
        if stop_on_interrupt:
            app.console.info(f"stopping job {plan.job}")
            stop_on_hosts(app.transport, [r.host for r in plan.ranks], plan.job)
        else:
            app.console.info(f"detached; job {plan.job} keeps running (sparkrun stop {plan.job})")
