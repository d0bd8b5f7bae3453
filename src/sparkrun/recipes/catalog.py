"""What `sparkrun list` and `sparkrun search` show: every recipe that a name would resolve to, with the reference to
type for it. Sources, in lookup order: `./recipes/`, enabled (downloaded) registries, the bundled recipes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sparkrun.errors import SparkrunError
from sparkrun.recipes.lookup import Found, Resolver, load_recipe_at, yaml_files
from sparkrun.recipes.model import RecipeSource
from sparkrun.recipes.registry import recipe_files
from sparkrun.recipes.runtime_choice import resolve_runtime_name


@dataclass(frozen=True)
class Entry:
    ref: str  # what to type after `sparkrun run`
    name: str
    origin: str  # "./recipes", "@official", "builtin"
    path: Path
    hidden: bool = False
    model: str = ""
    runtime: str = ""
    description: str = ""
    nodes: str = ""
    error: str | None = None  # why the recipe does not load

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "name": self.name,
            "origin": self.origin,
            "path": str(self.path),
            "hidden": self.hidden,
            "model": self.model,
            "runtime": self.runtime,
            "description": self.description,
            "nodes": self.nodes,
            "error": self.error,
        }

    def haystack(self) -> str:
        return " ".join((self.ref, self.model, self.runtime, self.description, self.origin)).lower()


def _nodes(low: int | None, high: int | None) -> str:
    if low and high:
        return str(low) if low == high else f"{low}-{high}"
    if low:
        return f"{low}+"
    return f"1-{high}" if high else "1+"


def _entry(found: Found, resolver: Resolver, ref: str, origin: str, hidden: bool) -> Entry:
    base = Entry(ref=ref, name=found.source.name, origin=origin, path=found.path, hidden=hidden)
    try:
        recipe = load_recipe_at(found, found.path.parent, resolver, strict=False)
    except SparkrunError as exc:
        return replace(base, error=exc.message)
    first_error = next((i.line() for i in recipe.issues if i.severity == "error"), None)
    return replace(
        base,
        model=recipe.model,
        runtime=resolve_runtime_name(recipe),
        description=" ".join(recipe.description.split())[:200],
        nodes=_nodes(recipe.min_nodes, recipe.max_nodes),
        error=first_error,
    )


def _registry_ref(source: RecipeSource, stems: Counter[str]) -> str:
    name = source.name if stems[source.name] == 1 else (source.relpath or source.name)
    return f"@{source.registry}/{name}"


def catalog(
    resolver: Resolver, *, registry: str | None = None, include_hidden: bool = False
) -> tuple[list[Entry], list[str]]:
    """All recipes (filtered to one registry when `registry` is given) and notes about what could not be listed."""
    entries: list[Entry] = []
    notes: list[str] = []
    root = resolver.cwd / "recipes"
    if registry is None and root.is_dir():
        for path in yaml_files(root):
            src = RecipeSource(name=path.stem, kind="cwd", trusted=True, path=path)
            entries.append(_entry(Found(path, src), resolver, path.stem, "./recipes", False))
    missing: list[str] = []
    for reg in resolver.store.enabled():
        if registry is not None and reg.name != registry:
            continue
        if not reg.cloned:
            missing.append(reg.name)
            continue
        hidden = not reg.visible and registry is None
        if hidden and not include_hidden:
            continue
        files = recipe_files(reg)
        stems = Counter(p.stem for p in files)
        for path in files:
            src = resolver.registry_source(reg, path)
            entries.append(_entry(Found(path, src), resolver, _registry_ref(src, stems), f"@{reg.name}", hidden))
    if missing:
        notes.append(f"registries not downloaded yet: {', '.join(missing)} (sparkrun registry update)")
    if resolver.bundled is not None and registry in (None, "builtin"):
        taken = {e.name for e in entries}
        seen = {e.path.resolve() for e in entries}
        for path in yaml_files(resolver.bundled):
            if path.resolve() in seen:  # a source checkout's ./recipes/ is the bundled directory
                continue
            src = resolver.builtin_source(path)
            ref = f"@builtin/{path.stem}" if path.stem in taken else path.stem
            entries.append(_entry(Found(path, src), resolver, ref, "builtin", False))
    return entries, notes


def matches(entry: Entry, query: str | None, runtime: str | None) -> bool:
    if runtime and not (entry.runtime == runtime or entry.runtime.startswith(f"{runtime}-")):
        return False
    if not query:
        return True
    haystack = entry.haystack()
    return all(word in haystack for word in query.lower().split())
