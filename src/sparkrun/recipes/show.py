"""What `sparkrun show RECIPE` reports: the resolved settings and where each came from, the image, the environment,
and each rank's final argv as the runtime plugin builds it (hosts are placeholders: planning never touches hosts)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sparkrun.chain import Settings
from sparkrun.recipes.api import (
    RuntimeLookup,
    build_settings,
    plan_nodes,
    preview_topology,
    render_request,
    resolve_runtime_name,
)
from sparkrun.recipes.model import Recipe
from sparkrun.recipes.render import shell_script
from sparkrun.recipes.trust import GatedItem, gated_items
from sparkrun.runtimes.base import RankSpec


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

    def to_json(self) -> dict[str, Any]:
        src = self.recipe.source
        return {
            "name": src.name,
            "ref": src.ref,
            "source": {"kind": src.kind, "path": str(src.path) if src.path else None, "registry": src.registry,
                       "url": src.url, "trusted": src.trusted, "include_chain": list(src.include_chain)},
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
            "env": dict(self.settings.env),
            "ranks": [{"rank": r.rank, "role": r.role, "argv": list(r.argv), "command": r.command_line,
                       "env": dict(r.env)} for r in self.ranks],
            "gated": [{"kind": g.kind, "key": g.key, "detail": g.detail} for g in self.gated],
        }  # fmt: skip


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
) -> ShowData:
    """Resolve everything `run` would, up to the runtime's per-rank argv. Raises `SparkrunError` subclasses."""
    name = resolve_runtime_name(recipe)
    runtime = runtimes.get(name)
    settings = build_settings(recipe, runtime, cli_values, options, num_nodes=nodes)
    request = render_request(recipe, runtime, settings, image=image, extra_args=(), env={})
    count = nodes or plan_nodes(recipe, settings)
    specs = runtime.build(request, preview_topology(count, settings))
    return ShowData(
        recipe=recipe,
        runtime=name,
        image=request.image,
        nodes=count,
        settings=settings,
        ranks=tuple(_rank_view(s) for s in specs),
        gated=tuple(gated_items(recipe)) if not recipe.source.trusted else (),
    )
