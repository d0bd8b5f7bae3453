"""From a recipe reference and the user's values to a `LaunchRequest`: the join between the recipe layer's one
resolution path (`recipes.resolved.resolve`, which `show` uses too) and the launch planner. No connection is opened
(except to fetch a recipe URL).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sparkrun.clusters import HostSelection
from sparkrun.hosts import split_assignments
from sparkrun.launch.hooks import HookSet, Renderer, pack_mods
from sparkrun.models.errors import ModelError
from sparkrun.models.manifest import ModelRequest, request_from_recipe
from sparkrun.recipes import lookup, trust
from sparkrun.recipes.model import Recipe
from sparkrun.recipes.readiness import Readiness
from sparkrun.recipes.request import RuntimeLookup
from sparkrun.recipes.resolved import ResolvedRecipe, resolve
from sparkrun.runtimes.base import Runtime, ServeRequest

# Credentials forwarded from the control machine's environment when set; they reach the containers through a
# private env file on the launch script's stdin, never a command line.
FORWARDED_SECRETS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


@dataclass(frozen=True)
class LaunchRequest:
    """Everything `plan_job` needs; built from the recipe layer's `ResolvedRecipe`."""

    recipe_name: str
    recipe_source: str
    runtime: Runtime
    request: ServeRequest
    selection: HostSelection
    nodes: int = 1  # tensor_parallel x pipeline_parallel, already checked against the recipe's node range
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    env: Mapping[str, str] = field(default_factory=dict)  # `-e KEY=VALUE` from the command line
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)  # forwarded from this machine (HF_TOKEN)
    readiness: Readiness = field(default_factory=Readiness)
    pull: str = "missing"  # or "never" (--offline)
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    hooks: HookSet = field(default_factory=HookSet)
    render_hook: Renderer | None = None  # fills hook placeholders, shell-quoted (the recipe layer's renderer)
    model_request: ModelRequest | None = None  # what to fetch from the Hub (None: a path on the hosts)
    model_metadata: Mapping[str, Any] = field(default_factory=dict)  # the recipe's `metadata:` (VRAM estimate)
    hub_offline: bool = False  # the model is synced to every host: containers get HF_HUB_OFFLINE=1


@dataclass(frozen=True)
class RecipeInput:
    """The user's choices for one launch, as plain values (what `sparkrun run` parses from its command line)."""

    ref: str
    values: Mapping[str, Any] = field(default_factory=dict)  # tensor_parallel, port, ... (None = not given)
    options: Sequence[str] = ()  # `-o key=value`
    image: str | None = None
    env: Sequence[str] = ()  # `-e KEY=VALUE`
    labels: Sequence[str] = ()  # `--label KEY=VALUE`
    extra_args: Sequence[str] = ()  # after `--`
    trust: bool = False
    offline: bool = False
    sync: bool = True  # put the model and image on every host first (False: the engine finds them itself)
    force: bool = False  # launch even when the memory estimate says it cannot fit


def resolve_input(
    runtimes: RuntimeLookup,
    given: RecipeInput,
    *,
    notify: Callable[[str], None],
    warn: Callable[[str], None],
    dry_run: bool,
    confirm: Callable[[str], bool] | None,
) -> ResolvedRecipe:
    """Find the recipe, check trust (a dry-run only warns), and resolve it for this launch."""
    recipe = lookup.load_by_ref(given.ref, notify=notify)
    if dry_run:  # a dry-run runs nothing: show what would need --trust instead of refusing
        gated = [] if (recipe.source.trusted or given.trust) else trust.gated_items(recipe)
        for item in gated:
            warn(f"untrusted recipe: a real run needs --trust for {item.line()}")
    else:
        trust.check_trust(
            recipe, trust_flag=given.trust, interactive=confirm is not None, confirm=confirm or (lambda _q: False)
        )
    env = split_assignments(given.env, what="-e/--env")
    resolved = resolve(
        recipe,
        runtimes,
        cli_values=given.values,
        options=given.options,
        image=given.image,
        extra_args=given.extra_args,
        env=env,
    )
    for issue in resolved.warnings:
        warn(issue.line())
    if not dry_run:
        resolved.mods.require()  # a real run stops at a missing mod
    for missing in resolved.mods.missing:
        warn(f"{missing.message} (a real run stops here; the plan below leaves this mod out)")
    return resolved


def launch_request(resolved: ResolvedRecipe, selection: HostSelection, given: RecipeInput) -> LaunchRequest:
    recipe = resolved.recipe
    hooks = HookSet(
        pre_exec=resolved.hooks.pre_exec,
        post_exec=resolved.hooks.post_exec,
        post_commands=resolved.hooks.post_commands,
        mods=pack_mods(resolved.mods.found),
        stop_after_post=resolved.hooks.stop_after_post,
    )
    return LaunchRequest(
        recipe_name=recipe.source.name,
        recipe_source=recipe.source.display,
        runtime=resolved.runtime,
        request=resolved.request,
        selection=selection,
        nodes=resolved.nodes,
        tensor_parallel=resolved.tensor_parallel,
        pipeline_parallel=resolved.pipeline_parallel,
        env=split_assignments(given.env, what="-e/--env"),
        secrets={k: os.environ[k] for k in FORWARDED_SECRETS if os.environ.get(k)},
        readiness=resolved.readiness,
        pull="never" if given.offline else "missing",
        extra_labels=split_assignments(given.labels, what="--label"),
        hooks=hooks,
        render_hook=resolved.render_hook,
        model_request=hub_model_request(recipe, resolved.runtime.name, resolved.settings),
        model_metadata=recipe.metadata,
    )


def hub_model_request(recipe: Recipe, runtime: str, settings: Mapping[str, Any]) -> ModelRequest | None:
    """The model to fetch from the Hub (repo, revision, patterns), or None for a path on the hosts or a name that is
    no Hub repo id (the engine resolves it itself)."""
    try:
        return request_from_recipe(recipe, runtime, settings)
    except ModelError:
        return None
