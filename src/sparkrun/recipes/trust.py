"""Trust gate: what an untrusted recipe may not do without `--trust`.

Trusted: local files (a path, `./recipes/`, the bundled recipes) and registries the user marked trusted with
`sparkrun registry trust NAME` (while their URL is unchanged). Untrusted: http(s) URLs (always), every other registry,
and any recipe whose `include:` chain has an untrusted member.

Gated items (an untrusted recipe may declare them; running them needs consent):
- hooks: each `pre_exec`, `post_exec`, `post_commands` entry, and each `mods` directory (they run code);
- isolation-breaking container settings: `executor_config` privileged / cap_add / security_opt / devices / user /
  volumes, `ipc` other than private/shareable/none, an executor other than docker; `cluster_config`; extra
  `volumes` (top-level, swept into runtime_config); an absolute or `~` `model:` path (host files mounted in).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sparkrun.errors import TrustError
from sparkrun.recipes.model import Recipe

ISOLATION_KEYS = ("privileged", "cap_add", "security_opt", "devices", "user", "volumes")
SAFE_IPC = frozenset({"", "private", "shareable", "none"})
SAFE_EXECUTORS = frozenset({"", "docker"})


@dataclass(frozen=True)
class GatedItem:
    kind: str  # "hook", "mod", "isolation"
    key: str  # dotted key path, e.g. pre_exec[0], executor_config.privileged
    detail: str  # what would run or change, one line

    def line(self) -> str:
        return f"{self.key}: {self.detail}"


def _one_line(value: Any, limit: int = 160) -> str:
    if isinstance(value, Mapping) and ("command" in value or "copy" in value):
        text = str(value.get("command") or f"copy {value.get('copy')} -> {value.get('dest')}")
    elif isinstance(value, Mapping):
        text = ", ".join(f"{k}={v}" for k, v in value.items())
    elif isinstance(value, list | tuple):
        text = ", ".join(str(v) for v in value)
    else:
        text = str(value)
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _hook_items(recipe: Recipe) -> list[GatedItem]:
    items: list[GatedItem] = []
    for kind, entries in recipe.hooks.items():
        items += [GatedItem("hook", f"{kind}[{i}]", _one_line(e)) for i, e in enumerate(entries)]
    items += [GatedItem("mod", f"mods[{i}]", f"run {m}/run.sh in the container") for i, m in enumerate(recipe.mods)]
    return items


def _unset(value: Any) -> bool:
    return value is None or value is False or value in ("", [], {})


def _isolation_items(recipe: Recipe) -> list[GatedItem]:
    items: list[GatedItem] = []
    config = recipe.executor_config
    for key in ISOLATION_KEYS:
        if not _unset(config.get(key)):
            items.append(GatedItem("isolation", f"executor_config.{key}", _one_line(config[key])))
    ipc = config.get("ipc")
    if ipc is not None and str(ipc) not in SAFE_IPC:
        items.append(GatedItem("isolation", "executor_config.ipc", f"{ipc} (shares the host's IPC namespace)"))
    if recipe.executor is not None and recipe.executor not in SAFE_EXECUTORS:
        items.append(GatedItem("isolation", "executor", f"{recipe.executor} (not the docker executor)"))
    if recipe.cluster_config:
        items.append(GatedItem("isolation", "cluster_config", _one_line(dict(recipe.cluster_config))))
    volumes = recipe.runtime_config.get("volumes")
    if not _unset(volumes):
        items.append(GatedItem("isolation", "volumes", _one_line(volumes)))
    if recipe.model.startswith(("/", "~")):
        items.append(GatedItem("isolation", "model", f"{recipe.model} (a host path mounted into the container)"))
    return items


def gated_items(recipe: Recipe) -> list[GatedItem]:
    """Everything in the recipe that needs trust, hooks first. Pure; empty for a harmless recipe."""
    return [*_hook_items(recipe), *_isolation_items(recipe)]


def describe(recipe: Recipe, items: list[GatedItem]) -> str:
    origin = recipe.source.ref
    lines = [f"{origin} is not trusted and asks to:"]
    lines += [f"  - {item.line()}" for item in items]
    return "\n".join(lines)


def check_trust(
    recipe: Recipe,
    *,
    trust_flag: bool,
    interactive: bool,
    confirm: Callable[[str], bool],
) -> None:
    """Allow, ask once, or refuse. `confirm(text)` gets the full list and returns the user's answer."""
    if recipe.source.trusted or trust_flag:
        return
    items = gated_items(recipe)
    if not items:
        return
    hint = "rerun with --trust"
    if recipe.source.registry:
        hint += f", or trust the registry: sparkrun registry trust {recipe.source.registry}"
    if not interactive:
        raise TrustError(
            f"{recipe.source.ref}: untrusted recipe wants {len(items)} gated item(s): "
            + ", ".join(item.key for item in items[:6])
            + (", ..." if len(items) > 6 else ""),
            hint=hint,
            detail="\n".join(item.line() for item in items),
        )
    if not confirm(describe(recipe, items) + "\nRun it anyway?"):
        raise TrustError(f"{recipe.source.ref}: not trusted; refused at the prompt", hint=hint)
