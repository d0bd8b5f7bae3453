"""The recipe API the `run` command uses. Pure: nothing here touches a host or the network (except `resolve_recipe`
for `@registry/name` of a registry that was never downloaded, and http(s) recipe URLs; see `resolve.py`).

Contract, in call order:

    recipe   = resolve_recipe(ref, notify=lambda m: console.info(f"note: {m}"))   # RecipeError (exit 3)
    check_trust(recipe, trust_flag=..., interactive=sys.stdin.isatty(), confirm=click.confirm)   # TrustError (7)
    runtime  = app.runtimes.get(resolve_runtime_name(recipe))           # PluginError for unknown runtimes
    settings = build_settings(recipe, runtime, cli_values, options)     # CLI/-o > overrides > defaults > runtime
    request  = render_request(recipe, runtime, settings, image=..., extra_args=..., env=...)
    specs    = runtime.build(request, Topology(...))                    # the runtime plugin's job
    hook     = render_hook(text, settings, launch_values)               # for pre_exec / post_exec / post_commands
    mods     = resolve_mods(recipe)                                     # directories holding run.sh, in order

- `cli_values` keys: port, host, served_model_name, tensor_parallel, pipeline_parallel, data_parallel,
  gpu_memory_utilization, max_model_len (None = not given); `options` are the raw `-o key[.field]=value` strings.
- `request.command` is the recipe's rendered `command:` as argv, or None (the runtime builds the command from
  settings). A command that needs a shell arrives as `("bash", "-c", '<prelude>\nexec "$@"', "sparkrun-serve",
  *engine_argv)` when its last statement is a plain command, else `("bash", "-c", '<script> "$@"',
  "sparkrun-serve")`: arguments a runtime appends (node rank, `-- EXTRA_ARGS`) reach the engine either way
  (`sparkrun.runtimes.base.is_shell_wrapper` recognises both).
- `request.env` is recipe env + matched overrides + `env` given here; `{config.NAME}` tokens are expanded, nothing
  else (the control machine's `$VAR`s never are).
- Every error is a `SparkrunError` subclass with a one-line message and a hint.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sparkrun.chain import Settings, parse_options, resolve
from sparkrun.errors import RecipeError
from sparkrun.recipes.model import Recipe
from sparkrun.recipes.overrides import PlatformFacts, override_matches, selector_facts
from sparkrun.recipes.render import IDENT, command_argv, render_template
from sparkrun.recipes.trust import GatedItem, check_trust, gated_items
from sparkrun.runtimes.base import Runtime, ServeRequest, Topology

if TYPE_CHECKING:
    from sparkrun.recipes.resolve import Resolver

__all__ = [
    "CLI_KEYS",
    "GatedItem",
    "RuntimeLookup",
    "build_settings",
    "check_trust",
    "gated_items",
    "infer_runtime",
    "plan_nodes",
    "preview_topology",
    "render_command",
    "render_hook",
    "render_request",
    "resolve_mods",
    "resolve_recipe",
    "resolve_runtime_name",
]

CLI_KEYS = (
    "port", "host", "served_model_name", "tensor_parallel", "pipeline_parallel", "data_parallel",
    "gpu_memory_utilization", "max_model_len",
)  # fmt: skip
HOOK_VALUES = ("head_host", "head_ip", "port", "cluster_id", "container_name", "cache_dir", "base_url")

_VLLM = re.compile(r"(?:^|[\s;&|/(])vllm\s+serve\b")
_SGLANG = re.compile(r"(?:^|[\s;&|/(])sglang\s+serve\b|\bsglang\.launch_server\b")
_LLAMA = re.compile(r"(?:^|[\s;&|/(])llama-server\b")
_RAY_BACKEND = re.compile(r"--distributed[-_]executor[-_]backend(?:\s+|=)['\"]?ray\b")
_CONFIG_TOKEN = re.compile(r"\{config\.(" + IDENT + r")\}")


class RuntimeLookup(Protocol):
    """What validate/show need from the runtime registry (`sparkrun.plugins.RuntimeRegistry` fits)."""

    def get(self, name: str) -> Runtime: ...


def infer_runtime(command: str | None) -> str | None:
    """`vllm serve` → vllm, `sglang serve`/`python3 -m sglang.launch_server` → sglang, `llama-server` → llama-cpp."""
    if not command:
        return None
    for pattern, name in ((_VLLM, "vllm"), (_SGLANG, "sglang"), (_LLAMA, "llama-cpp")):
        if pattern.search(command):
            return name
    return None


def resolve_runtime_name(recipe: Recipe) -> str:
    """The runtime plugin to use. `vllm` (declared or inferred) is virtual: `vllm-ray` when the command or defaults
    ask for `--distributed-executor-backend ray`, else `vllm-distributed`. No runtime and nothing to infer from:
    `vllm`, as the older tool did."""
    name = (recipe.runtime or "").strip() or infer_runtime(recipe.command) or "vllm"
    if name != "vllm":
        return name
    backend = str(recipe.defaults.get("distributed_executor_backend", "")).lower()
    if backend == "ray" or (recipe.command and _RAY_BACKEND.search(recipe.command)):
        return "vllm-ray"
    return "vllm-distributed"


def resolve_recipe(
    ref: str,
    *,
    cwd: Path | None = None,
    strict: bool = True,
    resolver: Resolver | None = None,
    notify: Callable[[str], None] | None = None,
) -> Recipe:
    """Find and load a recipe: `@registry/name` → URL → file → ./recipes/ → registries → bundled.
    `notify` gets one-line notes (a registry cloned on first use, a cached URL copy used offline)."""
    from sparkrun.recipes.resolve import Resolver

    if resolver is None:
        resolver = Resolver(cwd=cwd) if notify is None else Resolver(cwd=cwd, notify=notify)
    return resolver.load(ref, strict=strict)


def resolve_mods(recipe: Recipe, *, resolver: Resolver | None = None) -> list[Path]:
    """Directories (each with a `run.sh`) of the recipe's `mods:`, in order. Never downloads anything."""
    from sparkrun.recipes.resolve import Resolver

    return (resolver or Resolver()).mod_dirs(recipe)


def _cli_layer(cli_values: Mapping[str, Any], options: Sequence[str]) -> dict[str, Any]:
    layer = parse_options(options)
    layer.update({k: v for k, v in cli_values.items() if v is not None})
    return layer


def build_settings(
    recipe: Recipe,
    runtime: Runtime,
    cli_values: Mapping[str, Any],
    options: Sequence[str],
    *,
    platform: PlatformFacts | None = None,
    num_nodes: int | None = None,
) -> Settings:
    """Resolve the value chain: CLI flags and `-o` > matched overrides > recipe defaults > runtime defaults."""
    builtin = {"model": recipe.model, "served_model_name": recipe.model, "model_revision": recipe.model_revision}
    cli = _cli_layer(cli_values, options)
    lower: list[tuple[str, Mapping[str, Any]]] = [
        ("recipe", recipe.defaults),
        (f"runtime {runtime.name}", runtime.defaults()),
        ("builtin", builtin),
    ]
    base = resolve([("cli", cli), *lower])
    facts = selector_facts(
        base, runtime=runtime.name, family=runtime.family, platform=platform or PlatformFacts(), num_nodes=num_nodes
    )
    matched = [o for o in recipe.overrides if override_matches(o, facts, base)]
    layers = [("cli", cli), *((f"overrides[{o.index}]", o.defaults) for o in reversed(matched)), *lower]
    resolved = resolve(layers)
    env = dict(recipe.env)
    container = None
    for override in matched:
        env.update(override.env)
        container = override.container or container
    return Settings(
        data=resolved.data,
        origins=resolved.origins,
        env=env,
        container=container,
        matched_overrides=tuple(o.index for o in matched),
    )


def _template_values(recipe: Recipe, settings: Mapping[str, Any], image: str | None) -> dict[str, Any]:
    values = dict(settings)
    if image:
        values.setdefault("container", image)
        values.setdefault("image", image)
    values["model"] = recipe.model
    return values


def render_command(recipe: Recipe, settings: Mapping[str, Any], *, image: str | None = None) -> tuple[str, ...] | None:
    """The recipe's `command:` rendered and split into argv; None when the recipe has no command."""
    if recipe.command is None:
        return None
    where = recipe.where("command")
    rendered = render_template(recipe.command, _template_values(recipe, settings, image), escapes=recipe.brace_escapes)
    if rendered.missing:
        name = rendered.missing[0]
        raise RecipeError(
            f"{where}: command: placeholder {{{name}}} names nothing (no default, -o option or runtime value)",
            hint=f"add `{name}:` under defaults:, pass -o {name}=VALUE, or write a literal brace as-is",
        )
    try:
        return command_argv(rendered.text)
    except ValueError as exc:
        raise RecipeError(f"{where}: command: cannot split into arguments: {exc}", hint="check the quoting") from exc


def _expand_env(env: Mapping[str, str], settings: Mapping[str, Any]) -> dict[str, str]:
    def one(value: str) -> str:
        def sub(match: re.Match[str]) -> str:
            found = settings.get(match.group(1))
            return match.group(0) if found is None else str(found)

        return _CONFIG_TOKEN.sub(sub, value)

    return {name: one(value) for name, value in env.items()}


def render_request(
    recipe: Recipe,
    runtime: Runtime,
    settings: Settings,
    *,
    image: str | None,
    extra_args: Sequence[str],
    env: Mapping[str, str],
) -> ServeRequest:
    """The runtime's input. Image: CLI `--image` > matched override > recipe `container` > runtime default."""
    chosen = image or settings.container or recipe.container or runtime.default_image
    if not chosen:
        raise RecipeError(
            f"{recipe.where('container')}: no container image: the recipe sets none and runtime "
            f"{runtime.name!r} has no default",
            hint="set `container:` in the recipe or pass --image",
        )
    merged_env = _expand_env({**settings.env, **env}, settings)
    return ServeRequest(
        model=recipe.model,
        image=chosen,
        settings=dict(settings),
        command=render_command(recipe, settings, image=chosen),
        env=merged_env,
        runtime_config=dict(recipe.runtime_config),
        extra_args=tuple(extra_args),
    )


def render_hook(text: str, settings: Mapping[str, Any], launch_values: Mapping[str, Any]) -> str:
    """A hook string with its placeholders filled: settings plus launch-time values (`head_host`, `head_ip`, `port`,
    `cluster_id`, `container_name`, `cache_dir`, `base_url`), the latter winning. Unknown names raise."""
    values = {**settings, **{k: v for k, v in launch_values.items() if v is not None}}
    rendered = render_template(text, values, escapes="{{" in text)
    if rendered.missing:
        name = rendered.missing[0]
        raise RecipeError(
            f"hook: placeholder {{{name}}} names nothing (known: {', '.join(sorted(values)[:12])}, ...)",
            hint=f"define `{name}` under defaults: or write the text without braces",
        )
    return rendered.text


def plan_nodes(recipe: Recipe, settings: Mapping[str, Any], platform: PlatformFacts | None = None) -> int:
    """Nodes a launch needs: tensor x pipeline ranks over GPUs per node, within the recipe's node range."""
    facts = platform or PlatformFacts()
    ranks = _positive(settings.get("tensor_parallel")) * _positive(settings.get("pipeline_parallel"))
    nodes = max(1, -(-ranks // max(1, facts.gpus_per_node)), recipe.min_nodes or 1)
    return min(nodes, recipe.max_nodes) if recipe.max_nodes else nodes


def _positive(value: Any) -> int:
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return 1


MAX_NODES = 256


def preview_topology(nodes: int, settings: Mapping[str, Any]) -> Topology:
    """Placeholder hosts (`<head>`, `<worker1>`, …) for `show` and `validate`: planning without hosts."""
    if nodes > MAX_NODES:
        raise RecipeError(f"{nodes} nodes is more than sparkrun plans for ({MAX_NODES})", hint="check min_nodes/--tp")
    hosts = ("<head>", *(f"<worker{i}>" for i in range(1, nodes)))
    return Topology(
        hosts=hosts,
        addresses=hosts,
        tensor_parallel=_positive(settings.get("tensor_parallel")),
        pipeline_parallel=_positive(settings.get("pipeline_parallel")),
    )
