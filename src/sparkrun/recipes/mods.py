"""Where a recipe's `mods:` live: directories holding a `run.sh`, found without touching the network.

For each entry, first hit wins:
1. `@registry/path`: that registry's mods directory, then its checkout.
2. Next to the recipe file (`mods/fix-x` relative to the recipe's directory).
3. The registry checkout the recipe file sits in: the nearest parent with `.sparkrun/registry.yaml` (a local clone
   of a registry, or a registry clone in the cache), through the manifest's `mods:` directories, the entry whose
   `recipes:` directory holds the recipe first; or, without a manifest, a configured registry whose clone holds it.
4. The recipe's own registry's mods directory (a recipe found by name in a registry).
5. The `eugr` registry's (eugr-style recipes name mods that live there, as the older sparkrun assumed).
A missing mod says which registry to add (`sparkrun registry add URL`, the URL from the default registries when the
name is known) or to download (`sparkrun registry update NAME`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from sparkrun.errors import ConfigError, RecipeError
from sparkrun.recipes.model import Recipe
from sparkrun.recipes.registry import MANIFEST, Registry, RegistryStore, default_registries, parse_manifest

FALLBACK_REGISTRY = "eugr"


@dataclass(frozen=True)
class MissingMod:
    index: int
    name: str
    message: str  # one line: file:line, key, cause
    hint: str


@dataclass(frozen=True)
class ModDirs:
    """The recipe's mod directories in order (`found`), and the entries that could not be found (`missing`).

    A dry-run plans with `found` and shows `missing` as warnings; a real run calls `require()`."""

    found: tuple[Path, ...] = ()
    missing: tuple[MissingMod, ...] = field(default=())

    def require(self) -> tuple[Path, ...]:
        """Every mod directory, or a `RecipeError` for the first missing one."""
        if self.missing:
            first = self.missing[0]
            raise RecipeError(first.message, hint=first.hint)
        return self.found


def _registry_tree(path: Path) -> Path | None:
    for parent in path.parents:
        if (parent / MANIFEST).is_file():
            return parent
    return None


def _tree_roots(recipe_path: Path, store: Callable[[], RegistryStore]) -> list[Path]:
    """Mods directories of the registry checkout holding the recipe file (its own manifest entry first)."""
    root = _registry_tree(recipe_path)
    if root is None:
        clones = [r for r in _safe(store) if recipe_path.is_relative_to(r.clone_dir)]
        return [r.mods_dir for r in clones if r.mods_dir is not None]
    try:
        entries = parse_manifest(root, "") or []
    except ConfigError:
        return []
    own = [e for e in entries if recipe_path.is_relative_to(root / e.recipes.strip("/"))]
    return [root / e.mods for e in (*own, *(e for e in entries if e not in own)) if e.mods]


def _safe(store: Callable[[], RegistryStore]) -> list[Registry]:
    try:
        return list(store())
    except ConfigError:  # a broken registries.yaml must not hide a mod next to the recipe
        return []


def _registry_roots(reg: Registry) -> list[Path]:
    return [root for root in (reg.mods_dir, reg.clone_dir) if root is not None]


class _Finder:
    """One recipe's lookups, with the registry list and the checkout's manifest read at most once."""

    def __init__(self, recipe: Recipe, store: Callable[[], RegistryStore]) -> None:
        self.recipe = recipe
        self.store = cache(store)  # registries.yaml is read only when a mod is not next to the recipe
        self.path = recipe.source.path if recipe.source.kind != "url" else None
        self._tree: list[Path] | None = None

    @property
    def tree_roots(self) -> list[Path]:
        if self._tree is None:
            self._tree = _tree_roots(self.path, self.store) if self.path is not None else []
        return self._tree

    def candidates(self, mod: str) -> Iterator[Path]:
        name = mod.strip().rstrip("/")
        base = Path(name).name
        if name.startswith("@"):
            reg_name, _, rest = name[1:].partition("/")
            for reg in (r for r in _safe(self.store) if r.name == reg_name):
                yield from (root / rest for root in _registry_roots(reg))
            return
        if self.path is not None:
            yield self.path.parent / name
            for root in self.tree_roots:
                yield from (root / name, root / base)
        wanted = [self.recipe.source.registry, FALLBACK_REGISTRY]
        for reg in (r for w in wanted for r in _safe(self.store) if w and r.name == w):
            if reg.mods_dir is not None:
                yield from (reg.mods_dir / name, reg.mods_dir / base)
            yield reg.clone_dir / name

    def hint(self, mod: str) -> str:
        if mod.startswith("@"):
            wanted = mod[1:].partition("/")[0]
            return _registry_advice(wanted, self.store) or f"registry {wanted!r} has no {mod.partition('/')[2]!r}"
        advice: list[str] = []
        root = _registry_tree(self.path) if self.path is not None else None
        if root is not None:
            absent = [d for d in self.tree_roots if not d.is_dir()]
            advice += [f"this registry checkout ({root}) has no {d.relative_to(root)}/ directory" for d in absent[:1]]
        for wanted in dict.fromkeys(r for r in (self.recipe.source.registry, FALLBACK_REGISTRY) if r):
            found = _registry_advice(wanted, self.store)
            advice += [found] if found else []
        return (
            "; ".join(advice) or "fix the mod's path (a directory with a run.sh, next to the recipe or in its registry)"
        )


def _registry_advice(wanted: str, store: Callable[[], RegistryStore]) -> str | None:
    """What to do so that registry `wanted` can provide mods: add it, or download it. None when it is there."""
    reg = next((r for r in _safe(store) if r.name == wanted), None)
    if reg is not None:
        return None if reg.cloned else f"registry {wanted!r} is not downloaded: run `sparkrun registry update {wanted}`"
    known = {r.name: r.url for r in default_registries()}
    if wanted in known:
        return f"registry {wanted!r} is not added: run `sparkrun registry add {known[wanted]}`"
    return f"registry {wanted!r} is not added: add it with `sparkrun registry add URL`"


def find_mod_dirs(recipe: Recipe, store: Callable[[], RegistryStore] = RegistryStore.load) -> ModDirs:
    """The directory of each `mods:` entry. Never raises for a missing one: see `ModDirs.require`."""
    finder = _Finder(recipe, store)
    found: list[Path] = []
    missing: list[MissingMod] = []
    for index, mod in enumerate(recipe.mods):
        hit = next((p for p in finder.candidates(mod) if (p / "run.sh").is_file()), None)
        if hit is not None:
            found.append(hit)
            continue
        key = f"mods[{index}]"
        message = f"{recipe.where(key)}: {key}: no directory {mod!r} with a run.sh"
        missing.append(MissingMod(index, mod, message, finder.hint(mod)))
    return ModDirs(tuple(found), tuple(missing))
