"""From a recipe reference and the user's values to a `LaunchRequest`: the join between the recipe layer (resolve,
trust, value chain, templating) and the launch planner. No connection is opened (except to fetch a recipe URL).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sparkrun.clusters import HostSelection
from sparkrun.errors import RecipeError
from sparkrun.hosts import split_assignments
from sparkrun.launch.hooks import Copy, HookSet, Renderer, pack_mods
from sparkrun.launch.readiness import Readiness
from sparkrun.models.errors import ModelError
from sparkrun.models.manifest import ModelRequest, request_from_recipe
from sparkrun.recipes import api as recipes
from sparkrun.recipes.model import Recipe
from sparkrun.runtimes.base import Runtime, ServeRequest

# Credentials forwarded from the control machine's environment when set; they reach the containers through a
# private env file on the launch script's stdin, never a command line.
FORWARDED_SECRETS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


@dataclass(frozen=True)
class LaunchRequest:
    """Everything `plan_job` needs; built from the recipe layer's output."""

    recipe_name: str
    recipe_source: str
    runtime: Runtime
    request: ServeRequest
    selection: HostSelection
    env: Mapping[str, str] = field(default_factory=dict)  # `-e KEY=VALUE` from the command line
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)  # forwarded from this machine (HF_TOKEN)
    readiness: Readiness = field(default_factory=Readiness)
    min_nodes: int | None = None
    max_nodes: int | None = None
    pull: str = "missing"  # or "never" (--offline)
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    hooks: HookSet = field(default_factory=HookSet)
    render_hook: Renderer | None = None  # fills hook placeholders (the recipe layer's renderer)
    model_request: ModelRequest | None = None  # what to fetch from the Hub (None: a path on the hosts)
    model_metadata: Mapping[str, Any] = field(default_factory=dict)  # the recipe's `metadata:` (VRAM estimate)
    hub_offline: bool = False  # the model is synced to every host: containers get HF_HUB_OFFLINE=1


class RuntimeLookup(Protocol):
    """What the request builder needs from the runtime registry (`sparkrun.plugins.RuntimeRegistry` fits)."""

    def get(self, name: str) -> Runtime: ...


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


@dataclass(frozen=True)
class Resolved:
    """A recipe resolved for one launch, before hosts are chosen."""

    recipe: Recipe
    runtime: Runtime
    request: ServeRequest
    settings: Mapping[str, Any]
    hooks: HookSet
    env: Mapping[str, str]


def resolve(
    runtimes: RuntimeLookup,
    given: RecipeInput,
    *,
    notify: Callable[[str], None],
    warn: Callable[[str], None],
    dry_run: bool,
    confirm: Callable[[str], bool] | None,
) -> Resolved:
    """Resolve the recipe, check trust (a dry-run only warns), build settings and the runtime's request."""
    recipe = recipes.resolve_recipe(given.ref, notify=notify)
    if dry_run:  # a dry-run runs nothing: show what would need --trust instead of refusing
        gated = [] if (recipe.source.trusted or given.trust) else recipes.gated_items(recipe)
        for item in gated:
            warn(f"untrusted recipe: a real run needs --trust for {item.line()}")
    else:
        recipes.check_trust(
            recipe, trust_flag=given.trust, interactive=confirm is not None, confirm=confirm or (lambda _q: False)
        )
    runtime = runtimes.get(recipes.resolve_runtime_name(recipe))
    settings = recipes.build_settings(recipe, runtime, given.values, given.options)
    env = split_assignments(given.env, what="-e/--env")
    request = recipes.render_request(recipe, runtime, settings, image=given.image, extra_args=given.extra_args, env=env)
    hooks = HookSet(
        pre_exec=recipe.pre_exec,
        post_exec=recipe.post_exec,
        post_commands=recipe.post_commands,
        mods=_mods(recipe, warn=warn, dry_run=dry_run),
        stop_after_post=recipe.stop_after_post,
    )
    return Resolved(recipe, runtime, request, settings, hooks, env)


def launch_request(resolved: Resolved, selection: HostSelection, given: RecipeInput) -> LaunchRequest:
    recipe, settings = resolved.recipe, resolved.settings
    return LaunchRequest(
        recipe_name=recipe.source.name,
        recipe_source=recipe.source.display,
        runtime=resolved.runtime,
        request=resolved.request,
        selection=selection,
        env=resolved.env,
        secrets={k: os.environ[k] for k in FORWARDED_SECRETS if os.environ.get(k)},
        readiness=Readiness.from_recipe(recipe.readiness),
        min_nodes=recipe.min_nodes,
        max_nodes=recipe.max_nodes,
        pull="never" if given.offline else "missing",
        extra_labels=split_assignments(given.labels, what="--label"),
        hooks=resolved.hooks,
        render_hook=lambda text, values: recipes.render_hook(text, settings, values),
        model_request=hub_model_request(recipe, resolved.runtime.name, settings),
        model_metadata=recipe.metadata,
    )


def hub_model_request(recipe: Recipe, runtime: str, settings: Mapping[str, Any]) -> ModelRequest | None:
    """The model to fetch from the Hub (repo, revision, patterns), or None for a path on the hosts or a name that is
    no Hub repo id (the engine resolves it itself)."""
    try:
        return request_from_recipe(recipe, runtime, settings)
    except ModelError:
        return None


def _mods(recipe: Recipe, *, warn: Callable[[str], None], dry_run: bool) -> tuple[Copy, ...]:
    """The recipe's mod directories, packed. A dry-run shows the plan even when a mod is missing here."""
    if not recipe.mods:
        return ()
    try:
        return pack_mods(recipes.resolve_mods(recipe))
    except RecipeError as exc:
        if not dry_run:
            raise
        warn(f"{exc} (a real run stops here; the plan below leaves the mods out)")
        return ()


def nodes_needed(request: ServeRequest) -> int:
    """tensor x pipeline parallel: the hosts a launch needs (one GPU per DGX Spark)."""
    total = 1
    for key in ("tensor_parallel", "pipeline_parallel"):
        with contextlib.suppress(TypeError, ValueError):
            total *= max(1, int(request.setting(key, 1)))
    return total
