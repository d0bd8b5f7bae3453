"""Finding a recipe by reference, and listing what can be found.

Lookup order for `REF` (the first step that matches wins; two matches within one step is an error listing both):
1. `@registry/name` (or `@registry/sub/dir/name`): that registry only (cloned on first use, see registry.py);
   `@builtin/name` for the bundled recipes.
2. `http(s)://…`: fetched into `cache_dir()/url-recipes/`; never trusted; when the fetch fails, the cached copy is
   used with one note.
3. A file path, with or without `.yaml`/`.yml`.
4. `./recipes/` under the current directory (searched recursively by file stem).
5. Enabled registries: visible ones first; hidden ones only when no visible registry has the name.
6. The bundled recipes (a built-in, trusted registry named `builtin`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sparkrun.config import cache_dir
from sparkrun.errors import RecipeError
from sparkrun.recipes.load import IncludeTarget, load_text, read_text, sibling_file
from sparkrun.recipes.model import Recipe, RecipeSource
from sparkrun.recipes.mods import ModDirs, find_mod_dirs
from sparkrun.recipes.registry import Registry, RegistryStore, ensure_cloned, recipe_files

URL_SCHEMES = ("http://", "https://")
MAX_URL_BYTES = 1 << 20
URL_TIMEOUT_S = 15
Notify = Callable[[str], None]


def bundled_dir() -> Path | None:
    """Bundled recipes: `sparkrun/bundled_recipes` in a wheel, else the source checkout's `recipes/`."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "bundled_recipes", package.parent.parent / "recipes"):
        if candidate.is_dir():
            return candidate
    return None


@dataclass(frozen=True)
class Found:
    path: Path
    source: RecipeSource


def _ignore(_message: str) -> None:
    return None


def _stem_matches(files: list[Path], root: Path, ref: str) -> list[Path]:
    """Files whose stem is `ref`, or whose path under `root` (without suffix) is `ref`."""
    wanted = ref.removesuffix(".yaml").removesuffix(".yml")
    return [f for f in files if f.stem == wanted or f.relative_to(root).with_suffix("").as_posix() == wanted]


def yaml_files(root: Path) -> list[Path]:
    found = [p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()]
    return sorted(p for p in found if not any(part.startswith(".") for part in p.relative_to(root).parts))


def _fetch(url: str) -> bytes:
    import urllib.request  # deferred: only URL recipes need it

    request = urllib.request.Request(url, headers={"User-Agent": "sparkrun"})
    with urllib.request.urlopen(request, timeout=URL_TIMEOUT_S) as response:
        data: bytes = response.read(MAX_URL_BYTES + 1)
    if len(data) > MAX_URL_BYTES:
        raise RecipeError(f"{url}: larger than {MAX_URL_BYTES} bytes; not a recipe")
    return data


class Resolver:
    """Resolves references against the current directory, the configured registries and the bundled recipes."""

    def __init__(
        self,
        *,
        cwd: Path | None = None,
        store: RegistryStore | None = None,
        notify: Notify = _ignore,
        fetch: Callable[[str], bytes] = _fetch,
        bundled: Path | None = None,
        use_bundled: bool = True,
    ) -> None:
        self.cwd = cwd or Path.cwd()
        self._store = store
        self.notify = notify
        self.fetch = fetch
        self.bundled = (bundled or bundled_dir()) if use_bundled else None

    @property
    def store(self) -> RegistryStore:
        if self._store is None:
            self._store = RegistryStore.load()
        return self._store

    # ---- sources -------------------------------------------------------------------------------------------
    def registry_source(self, reg: Registry, path: Path) -> RecipeSource:
        relpath = path.relative_to(reg.recipe_dir).with_suffix("").as_posix()
        return RecipeSource(
            name=path.stem,
            kind="registry",
            trusted=reg.is_trusted,
            path=path,
            registry=reg.name,
            url=reg.url,
            relpath=relpath,
        )

    def builtin_source(self, path: Path) -> RecipeSource:
        assert self.bundled is not None
        relpath = path.relative_to(self.bundled).with_suffix("").as_posix()
        return RecipeSource(
            name=path.stem, kind="builtin", trusted=True, path=path, registry="builtin", relpath=relpath
        )

    # ---- steps ---------------------------------------------------------------------------------------------
    def _one(self, ref: str, candidates: list[Found]) -> Found | None:
        if len(candidates) > 1:
            listed = ", ".join(c.source.ref if c.source.kind != "cwd" else str(c.path) for c in candidates)
            raise RecipeError(f"recipe {ref!r} is ambiguous: {listed}", hint="name one of them exactly")
        return candidates[0] if candidates else None

    def in_registry(self, reg: Registry, name: str) -> list[Found]:
        files = recipe_files(reg)
        return [Found(p, self.registry_source(reg, p)) for p in _stem_matches(files, reg.recipe_dir, name)]

    def in_bundled(self, name: str) -> list[Found]:
        if self.bundled is None:
            return []
        matches = _stem_matches(yaml_files(self.bundled), self.bundled, name)
        return [Found(p, self.builtin_source(p)) for p in matches]

    def _qualified(self, ref: str) -> Found:
        reg_name, _, name = ref[1:].partition("/")
        if not reg_name or not name:
            raise RecipeError(f"{ref!r}: expected @registry/recipe", hint="e.g. @official/qwen3.6-27b-fp8-vllm")
        if reg_name == "builtin":
            found = self._one(ref, self.in_bundled(name))
        else:
            reg = self.store.get(reg_name)
            if not reg.enabled:
                raise RecipeError(f"registry {reg_name!r} is disabled", hint=f"sparkrun registry enable {reg_name}")
            found = self._one(ref, self.in_registry(ensure_cloned(self.store, reg, self.notify), name))
        if found is None:
            raise RecipeError(
                f"no recipe {name!r} in registry {reg_name!r}", hint=f"sparkrun list --registry {reg_name}"
            )
        return found

    def _url(self, url: str) -> Found:
        cache = self._url_cache(url)
        try:
            data = self.fetch(url)
        except (OSError, ValueError) as exc:  # urllib's URLError/HTTPError are OSErrors
            if not cache.is_file():
                raise RecipeError(f"cannot fetch {url}: {exc}", hint="check the URL and the network") from exc
            self.notify(f"cannot fetch {url} ({exc}); using the cached copy")
        else:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(cache)
        stem = Path(url.split("?", 1)[0].rstrip("/")).stem or "recipe"
        return Found(cache, RecipeSource(name=stem, kind="url", trusted=False, path=cache, url=url))

    @staticmethod
    def _url_cache(url: str) -> Path:
        return cache_dir() / "url-recipes" / f"{hashlib.sha256(url.encode()).hexdigest()[:24]}.yaml"

    def _file(self, ref: str) -> Found | None:
        base = Path(ref).expanduser()
        base = base if base.is_absolute() else self.cwd / base
        for candidate in (base, base.with_name(base.name + ".yaml"), base.with_name(base.name + ".yml")):
            if candidate.is_file():
                return Found(candidate, RecipeSource(name=candidate.stem, kind="file", trusted=True, path=candidate))
        return None

    def _cwd(self, ref: str) -> Found | None:
        root = self.cwd / "recipes"
        if not root.is_dir():
            return None
        found = [
            Found(p, RecipeSource(name=p.stem, kind="cwd", trusted=True, path=p))
            for p in _stem_matches(yaml_files(root), root, ref)
        ]
        return self._one(ref, found)

    def _registries(self, ref: str) -> Found | None:
        enabled = [r for r in self.store.enabled() if r.cloned]
        for group in ([r for r in enabled if r.visible], [r for r in enabled if not r.visible]):
            found = [f for reg in group for f in self.in_registry(reg, ref)]
            if found:
                return self._one(ref, found)
        return None

    def find(self, ref: str) -> Found:
        ref = ref.strip()
        if not ref:
            raise RecipeError("empty recipe reference", hint="name a recipe: sparkrun list")
        if ref.startswith("@"):
            return self._qualified(ref)
        if ref.startswith(URL_SCHEMES):
            return self._url(ref)
        found = self._file(ref) or self._cwd(ref) or self._registries(ref) or self._one(ref, self.in_bundled(ref))
        if found is None:
            raise RecipeError(f"recipe {ref!r} not found", hint=self._not_found_hint())
        return found

    def _not_found_hint(self) -> str:
        missing = [r.name for r in self.store.enabled() if not r.cloned]
        hint = "see `sparkrun list`"
        if missing:
            hint += f"; registries not downloaded yet: {', '.join(missing)} (run `sparkrun registry update`)"
        return hint

    # ---- loading -------------------------------------------------------------------------------------------
    def include_target(self, ref: str, directory: Path | None) -> IncludeTarget:
        """`include:` references: `@registry/name`, or a sibling file of the including recipe."""
        if ref.startswith("@"):
            found = self._qualified(ref)
            return IncludeTarget(
                str(found.path.resolve()),
                found.source.display,
                read_text(found.path),
                found.source.trusted,
                found.path.parent,
            )
        sibling = sibling_file(ref, directory)
        if sibling is None:
            where = f" in {directory}" if directory else ""
            raise RecipeError(f"include {ref!r}: no such file{where}", hint="include a sibling file or @registry/name")
        return IncludeTarget(str(sibling.resolve()), str(sibling), read_text(sibling), True, sibling.parent)

    # ---- mods ----------------------------------------------------------------------------------------------
    def mod_dirs(self, recipe: Recipe) -> ModDirs:
        """The recipe's mod directories (see `mods.py`); missing ones are reported, not raised."""
        return find_mod_dirs(recipe, lambda: self.store)

    def load(self, ref: str, *, strict: bool = True) -> Recipe:
        found = self.find(ref)
        directory = None if found.source.kind == "url" else found.path.parent
        return load_recipe_at(found, directory, self, strict=strict)


def load_recipe_at(found: Found, directory: Path | None, resolver: Resolver, *, strict: bool) -> Recipe:
    text = read_text(found.path)
    return load_text(text, found.source, directory=directory, resolver=resolver.include_target, strict=strict)


def load_by_ref(
    ref: str,
    *,
    cwd: Path | None = None,
    strict: bool = True,
    resolver: Resolver | None = None,
    notify: Notify | None = None,
) -> Recipe:
    """Find and load a recipe: `@registry/name` → URL → file → ./recipes/ → registries → bundled.
    `notify` gets one-line notes (a registry cloned on first use, a cached URL copy used offline)."""
    if resolver is None:
        resolver = Resolver(cwd=cwd) if notify is None else Resolver(cwd=cwd, notify=notify)
    return resolver.load(ref, strict=strict)


__all__ = ["Found", "Resolver", "bundled_dir", "load_by_ref", "load_recipe_at", "yaml_files"]
