"""What `sparkrun show RECIPE` reports: the resolved settings and where each came from, the image, the environment,
and each rank's final argv as the runtime plugin builds it (hosts are placeholders: planning never touches hosts).
It goes through `resolved.resolve`, the same path as `run`."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sparkrun.recipes.command_argv import shell_script
from sparkrun.recipes.model import Issue, Recipe
from sparkrun.recipes.mods import MissingMod, ModDirs, find_mod_dirs
from sparkrun.recipes.request import RuntimeLookup
from sparkrun.recipes.resolved import NodeRangeError, preview_topology, resolve
from sparkrun.recipes.trust import GatedItem
from sparkrun.recipes.value_chain import Settings
from sparkrun.runtimes.base import RankSpec
from sparkrun.secrets import masked


@dataclass(frozen=True)
class RankView:
    rank: int
    role: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def command_line(self) -> str:
        script = shell_script(self.argv)  # already includes the arguments "$@" expands to
        return script if script is not None else shlex.join(self.argv)


@dataclass(frozen=True)
class ShowData:
    recipe: Recipe
    runtime: str
    image: str
    nodes: int
    settings: Settings
    ranks: tuple[RankView, ...]
    gated: tuple[GatedItem, ...]
    warnings: tuple[Issue, ...] = ()
    missing_mods: tuple[MissingMod, ...] = ()

    def to_json(self) -> dict[str, Any]:
        src = self.recipe.source
        return {
            "name": src.name,
            "ref": src.ref,
            "source": {
                "kind": src.kind,
                "path": str(src.path) if src.path else None,
                "registry": src.registry,
                "url": src.url,
                "trusted": src.trusted,
                "include_chain": list(src.include_chain),
            },
            "description": self.recipe.description,
            "model": self.recipe.model,
            "model_revision": self.recipe.model_revision,
            "runtime": self.runtime,
            "image": self.image,
            "nodes": self.nodes,
            "min_nodes": self.recipe.min_nodes,
            "max_nodes": self.recipe.max_nodes,
            "settings": dict(self.settings),
            "origins": dict(self.settings.origins),
            "matched_overrides": list(self.settings.matched_overrides),
            "env": masked(self.settings.env),
            "ranks": [
                {"rank": r.rank, "role": r.role, "argv": list(r.argv), "command": r.command_line, "env": masked(r.env)}
                for r in self.ranks
            ],
            "gated": [{"kind": g.kind, "key": g.key, "detail": g.detail} for g in self.gated],
            "warnings": [w.to_json() for w in self.warnings],
            "missing_mods": [{"mod": m.name, "message": m.message, "hint": m.hint} for m in self.missing_mods],
        }


def _rank_view(spec: RankSpec) -> RankView:
    return RankView(rank=spec.rank, role=spec.role, argv=tuple(spec.argv), env=dict(spec.env))


def describe(
    recipe: Recipe,
    runtimes: RuntimeLookup,
    *,
    cli_values: Mapping[str, Any],
    options: Sequence[str],
    image: str | None = None,
    nodes: int | None = None,
    mods: Callable[[Recipe], ModDirs] = find_mod_dirs,
) -> ShowData:
    """Resolve everything `run` would, up to the runtime's per-rank argv. Raises `SparkrunError` subclasses, except
    for a parallelism outside the recipe's node range: then the plan is shown for the nearest node count the recipe
    allows, with `run`'s refusal as a warning."""
    args: dict[str, Any] = {"cli_values": cli_values, "options": options, "image": image, "mods": mods}
    refused: tuple[Issue, ...] = ()
    try:
        resolved = resolve(recipe, runtimes, nodes=nodes, **args)
    except NodeRangeError as exc:
        resolved = resolve(recipe, runtimes, nodes=exc.preview, **args)
        hint = exc.hint or "pass --tp/--pp within the recipe's node range"
        refused = (Issue("warning", "parallelism-outside-nodes", f"run refuses this: {exc.message}", None, None, hint),)
    specs = resolved.runtime.build(resolved.request, preview_topology(resolved))
    return ShowData(
        recipe=recipe,
        runtime=resolved.runtime_name,
        image=resolved.request.image,
        nodes=resolved.nodes,
        settings=resolved.settings,
        ranks=tuple(_rank_view(s) for s in specs),
        gated=resolved.gated,
        warnings=refused + resolved.warnings,
        missing_mods=resolved.mods.missing,
    )
