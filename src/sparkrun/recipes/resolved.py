"""One recipe-resolution path: a loaded recipe plus the command line → everything `run`, `run --dry-run` and `show`
need, as one frozen `ResolvedRecipe`. Pure apart from reading local files (mod directories, `registries.yaml`).

    recipe   = lookup.load_by_ref(ref, notify=...)                   # RecipeError (exit 3)
    check_trust(recipe, trust_flag=..., interactive=..., confirm=...) # TrustError (7); a dry-run only warns
    resolved = resolve(recipe, app.runtimes, cli_values=..., options=..., image=..., extra_args=..., env=...)
    specs    = resolved.runtime.build(resolved.request, topology)    # topology: real hosts, or preview_topology()
    hook     = resolved.render_hook(text, launch_values)             # pre_exec / post_exec / post_commands
    mods     = resolved.mods.require()                               # a real run; a dry-run uses .found/.missing

`resolve` raises `RecipeError` for a setting an engine refuses, a node count outside the recipe's range, a command
that does not render, or a bad `readiness:`; `PluginError` for a runtime no plugin provides. Values it cannot vouch
for are `warnings` (print them). `cli_values` keys are `settings_keys.CLI_SETTING_KEYS` (None = not given); `options`
are the raw `-o key[.field]=value` strings; `env` is `-e KEY=VALUE`, already split.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sparkrun.errors import RecipeError
from sparkrun.recipes.model import Issue, Recipe
from sparkrun.recipes.mods import ModDirs, find_mod_dirs
from sparkrun.recipes.overrides import PlatformFacts
from sparkrun.recipes.readiness import Readiness, parse_readiness
from sparkrun.recipes.render import placeholders, render_hook
from sparkrun.recipes.request import RuntimeLookup, render_request
from sparkrun.recipes.runtime_choice import resolve_runtime_name
from sparkrun.recipes.trust import GatedItem, gated_items
from sparkrun.recipes.value_chain import Settings, build_settings
from sparkrun.recipes.value_types import check_setting_values
from sparkrun.runtimes.base import Runtime, ServeRequest, Topology

MAX_NODES = 256


class NodeRangeError(RecipeError):
    """tensor_parallel x pipeline_parallel falls outside the recipe's node range. `preview` is the nearest count the
    recipe allows, for read-only commands that still want to show the plan (`show`, `validate`)."""

    def __init__(self, message: str, *, preview: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.preview = preview


@dataclass(frozen=True)
class Hooks:
    """The recipe's hook entries as written (strings, `{command, timeout}`): render each with `render_hook`."""

    pre_exec: tuple[Any, ...] = ()
    post_exec: tuple[Any, ...] = ()
    post_commands: tuple[Any, ...] = ()
    stop_after_post: bool = False


@dataclass(frozen=True)
class ResolvedRecipe:
    recipe: Recipe
    runtime_name: str
    runtime: Runtime
    settings: Settings  # with origins (`settings.origin(key)`)
    request: ServeRequest
    nodes: int  # hosts the launch needs: tensor_parallel x pipeline_parallel, within min_nodes..max_nodes
    tensor_parallel: int
    pipeline_parallel: int
    readiness: Readiness
    hooks: Hooks
    mods: ModDirs
    warnings: tuple[Issue, ...] = ()  # setting values and readiness settings sparkrun cannot vouch for
    gated: tuple[GatedItem, ...] = field(default=())  # what needs --trust (empty for a trusted recipe)

    def render_hook(self, text: str, launch_values: Mapping[str, Any]) -> str:
        """A hook entry's text with settings and launch values (`head_ip`, `port`, ...) filled in, shell-quoted."""
        return render_hook(text, self.settings, launch_values)

    def topology(self, hosts: Sequence[str], addresses: Sequence[str] | None = None) -> Topology:
        return Topology(
            hosts=tuple(hosts),
            addresses=tuple(addresses if addresses is not None else hosts),
            tensor_parallel=self.tensor_parallel,
            pipeline_parallel=self.pipeline_parallel,
        )


def preview_hosts(nodes: int) -> tuple[str, ...]:
    """Placeholder hosts for planning without hosts (`show`, a host-less `run --dry-run`): `<head>`, `<worker1>`..."""
    if nodes > MAX_NODES:
        raise RecipeError(f"{nodes} nodes is more than sparkrun plans for ({MAX_NODES})", hint="check min_nodes/--tp")
    return ("<head>", *(f"<worker{i}>" for i in range(1, nodes)))


def preview_topology(resolved: ResolvedRecipe) -> Topology:
    return resolved.topology(preview_hosts(resolved.nodes))


def _whole_setting(settings: Mapping[str, Any], key: str) -> int:
    value = settings.get(key)
    if value is None:
        return 1
    try:
        number = int(str(value).strip()) if not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None:
        raise RecipeError(f"{key}: expected a whole number, got {value!r}")
    if number < 1:
        raise RecipeError(f"{key}: must be at least 1, got {number}")
    return number


def node_count(recipe: Recipe, settings: Mapping[str, Any]) -> tuple[int, int, int]:
    """(hosts, tensor_parallel, pipeline_parallel): one GPU per DGX Spark, so tp x pp hosts, which must lie within
    the recipe's min_nodes..max_nodes. The one place the node count is computed."""
    tp = _whole_setting(settings, "tensor_parallel")
    pp = _whole_setting(settings, "pipeline_parallel")
    need = tp * pp
    name = recipe.source.name
    if recipe.max_nodes is not None and need > recipe.max_nodes:
        raise NodeRangeError(
            f"{name}: tensor_parallel {tp} x pipeline_parallel {pp} needs {need} hosts, "
            f"but the recipe allows at most {recipe.max_nodes}",
            preview=recipe.max_nodes,
        )
    if recipe.min_nodes is not None and need < recipe.min_nodes:
        raise NodeRangeError(
            f"{name}: the recipe needs at least {recipe.min_nodes} nodes, but tensor_parallel {tp} x "
            f"pipeline_parallel {pp} = {need}",
            hint=f"pass --tp {recipe.min_nodes}",
            preview=recipe.min_nodes,
        )
    return need, tp, pp


def used_keys(recipe: Recipe, runtime: Runtime, settings: Mapping[str, Any]) -> set[str]:
    """Settings that reach the engine: named by the command (directly or through another setting's text), or mapped
    to flags by the runtime when there is no command."""
    if recipe.command is None:
        return set(runtime.mapped_keys())
    used: set[str] = set()
    pending = [recipe.command]
    while pending:
        text = pending.pop()
        for name in placeholders(text, escapes=recipe.brace_escapes):
            key = name.removeprefix("config.").split(".")[0]
            if key not in used:
                used.add(key)
                nested = settings.get(key)
                if isinstance(nested, str):
                    pending.append(nested)
    return used


def _raise_first_error(issues: Sequence[Issue]) -> list[Issue]:
    for issue in issues:
        if issue.severity == "error":
            raise RecipeError(issue.line(), hint=issue.hint)
    return list(issues)


def resolve(
    recipe: Recipe,
    runtimes: RuntimeLookup | Runtime,
    *,
    cli_values: Mapping[str, Any] | None = None,
    options: Sequence[str] = (),
    image: str | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    nodes: int | None = None,
    platform: PlatformFacts | None = None,
    mods: Callable[[Recipe], ModDirs] = find_mod_dirs,
) -> ResolvedRecipe:
    """Resolve a recipe for one launch (see the module docstring). `nodes` previews that many hosts instead of the
    tp x pp count (`show --nodes`); `runtimes` may be the runtime itself."""
    runtime = runtimes if isinstance(runtimes, Runtime) else runtimes.get(resolve_runtime_name(recipe))
    settings = build_settings(recipe, runtime, cli_values or {}, options, platform=platform, num_nodes=nodes)
    used = used_keys(recipe, runtime, settings)
    family = runtime.family or runtime.name
    warnings = _raise_first_error(
        check_setting_values(recipe, settings, family=family, runtime=runtime.name, used=used)
    )
    if nodes is None:
        count, tp, pp = node_count(recipe, settings)
    else:
        count, tp, pp = (
            nodes,
            _whole_setting(settings, "tensor_parallel"),
            _whole_setting(settings, "pipeline_parallel"),
        )
    request = render_request(recipe, runtime, settings, image=image, extra_args=extra_args, env=env or {})
    readiness, readiness_issues = parse_readiness(recipe.readiness, recipe.where)
    warnings += _raise_first_error(readiness_issues)
    return ResolvedRecipe(
        recipe=recipe,
        runtime_name=runtime.name,
        runtime=runtime,
        settings=settings,
        request=request,
        nodes=count,
        tensor_parallel=tp,
        pipeline_parallel=pp,
        readiness=readiness,
        hooks=Hooks(recipe.pre_exec, recipe.post_exec, recipe.post_commands, recipe.stop_after_post),
        mods=mods(recipe),
        warnings=tuple(warnings),
        gated=() if recipe.source.trusted else tuple(gated_items(recipe)),
    )
