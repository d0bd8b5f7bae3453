"""Git recipe registries: what is configured (`config_dir()/registries.yaml`), where clones live
(`cache_dir()/registries/`), and the add / remove / update / enable / disable / trust operations.

A repository may hold several named registries, declared in its `.sparkrun/registry.yaml` manifest:

```yaml
registries:
  - {name: official, recipes: official-recipes, tuning: tuning, benchmarks: benchmarking, mods: official-mods}
  - {name: experimental, recipes: experimental-recipes, visible: false}
```
A repository without a manifest is one registry whose recipes are in `recipes/` (or the whole tree).
Until `registries.yaml` exists the configured list is the shipped defaults (`default_registries.yaml`); the first
change writes the full list (under the config lock, see `editing`). Only `add`, `update` and `ensure_cloned` (naming
`@registry/recipe` of a registry never downloaded) touch the network; an unreachable remote with a clone is a note.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from sparkrun.config import cache_dir, config_dir, config_lock, load_yaml_mapping, write_yaml_atomic
from sparkrun.errors import ConfigError
from sparkrun.recipes import git

MANIFEST = ".sparkrun/registry.yaml"
RESERVED = frozenset({"builtin", "local", "cwd", "file", "url"})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
Notify = Callable[[str], None]


@dataclass(frozen=True)
class Registry:
    name: str
    url: str
    recipes: str = "recipes"
    tuning: str | None = None
    benchmarks: str | None = None
    mods: str | None = None
    description: str = ""
    visible: bool = True
    enabled: bool = True
    trusted: bool = False
    trusted_url: str | None = None  # the URL at the time it was trusted: a changed URL is no longer trusted
    commit: str | None = None  # the checked-out commit recorded at the last clone/update
    updated: str | None = None
    origin: str = "user"  # "default" (shipped) or "user"

    @property
    def clone_dir(self) -> Path:
        return clone_dir_for(self.url)

    @property
    def cloned(self) -> bool:
        return (self.clone_dir / ".git").exists()

    @property
    def recipe_dir(self) -> Path:
        return self.clone_dir / self.recipes.strip("/") if self.recipes.strip("/") not in ("", ".") else self.clone_dir

    @property
    def mods_dir(self) -> Path | None:
        return self.clone_dir / self.mods if self.mods else None

    @property
    def is_trusted(self) -> bool:
        return self.trusted and self.trusted_url == self.url

    def paths(self) -> list[str]:
        return [p for p in (self.recipes, self.tuning, self.benchmarks, self.mods) if p is not None]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(cloned=self.cloned, is_trusted=self.is_trusted, path=str(self.recipe_dir))
        return data


def clone_dir_for(url: str) -> Path:
    stem = re.sub(r"[^A-Za-z0-9]+", "-", url.removesuffix(".git").split("://")[-1]).strip("-")[-40:]
    return cache_dir() / "registries" / f"{stem}-{hashlib.sha256(url.encode()).hexdigest()[:8]}"


def state_file() -> Path:
    return config_dir() / "registries.yaml"


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or name in RESERVED:
        raise ConfigError(
            f"invalid registry name {name!r}",
            hint="use letters, digits, '.', '_' or '-' (not builtin/local/cwd/file/url)",
        )
    return name


def _entry(raw: Mapping[str, Any], where: str, **extra: Any) -> Registry:
    name, url = raw.get("name"), raw.get("url", extra.pop("url", None))
    if not isinstance(name, str) or not isinstance(url, str):
        raise ConfigError(f"{where}: each registry needs a string name and url, got {dict(raw)!r}")
    known = {f for f in Registry.__dataclass_fields__ if f not in ("name", "url")}
    values = {k: v for k, v in raw.items() if k in known and v is not None}
    values.update(extra)
    try:
        return Registry(name=name, url=url, **values)
    except TypeError as exc:
        raise ConfigError(f"{where}: registry {name!r}: {exc}") from exc


@cache
def _default_entries() -> tuple[Registry, ...]:
    import yaml  # deferred: PyYAML only once the registry list is read

    text = (files("sparkrun.recipes") / "default_registries.yaml").read_text(encoding="utf-8")
    raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    return tuple(_entry(r, "default_registries.yaml", origin="default") for r in raw.get("registries", []))


def default_registries() -> list[Registry]:
    """The shipped registry list (a fresh list each time: callers change theirs)."""
    return list(_default_entries())


def parse_manifest(repo: Path, url: str) -> list[Registry] | None:
    """The registries a clone declares, or None when it has no manifest."""
    path = repo / MANIFEST
    if not path.is_file():
        return None
    data = load_yaml_mapping(path, what="registry manifest")
    entries = data.get("registries")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: expected `registries:` with at least one entry")
    out: list[Registry] = []
    for raw in entries:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{path}: each entry of registries: must be a mapping")
        fields = {
            k: raw[k]
            for k in ("recipes", "tuning", "benchmarks", "mods", "description", "visible", "enabled")
            if raw.get(k) is not None
        }
        out.append(_entry({"name": raw.get("name"), **fields}, str(path), url=url))
    return out


@dataclass
class RegistryStore:
    """The configured registries; `save()` writes them."""

    registries: list[Registry] = field(default_factory=list)
    from_defaults: bool = False

    @classmethod
    def load(cls) -> RegistryStore:
        path = state_file()
        if not path.exists():
            return cls(default_registries(), from_defaults=True)
        data = load_yaml_mapping(path, what="registry list")
        raw = data.get("registries") or []
        if not isinstance(raw, list):
            raise ConfigError(f"{path}: `registries:` must be a list", hint="fix or delete the file")
        return cls([_entry(r, str(path)) for r in raw if isinstance(r, Mapping)])

    def save(self) -> None:
        entries = [{k: v for k, v in asdict(r).items() if v is not None} for r in self.registries]
        write_yaml_atomic(state_file(), {"registries": entries})
        self.from_defaults = False

    def __iter__(self) -> Iterator[Registry]:
        return iter(self.registries)

    def get(self, name: str) -> Registry:
        for reg in self.registries:
            if reg.name == name:
                return reg
        names = ", ".join(r.name for r in self.registries) or "none"
        raise ConfigError(f"no registry named {name!r}", hint=f"configured: {names} (see `sparkrun registry list`)")

    def put(self, registry: Registry) -> None:
        self.registries = [registry if r.name == registry.name else r for r in self.registries]

    def enabled(self) -> list[Registry]:
        return [r for r in self.registries if r.enabled]

    def sharing(self, url: str) -> list[Registry]:
        return [r for r in self.registries if r.url == url]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sparse_paths(registries: list[Registry]) -> list[str]:
    paths = [".sparkrun"]
    for reg in registries:
        paths += reg.paths()
    return paths


def _select(found: list[Registry], name: str | None, url: str) -> list[Registry]:
    """Which manifest entries `registry add` registers, under which names (see `cli/registry.py`)."""
    if name is None:
        return found
    if len(found) == 1:
        return [replace(found[0], name=check_name(name))]
    chosen = [r for r in found if r.name == name]
    if not chosen:
        listed = ", ".join(r.name for r in found)
        raise ConfigError(f"{url} declares registries {listed}; none is named {name!r}", hint="pick one of them")
    return chosen


def add(store: RegistryStore, url: str, *, name: str | None, trust: bool, fetch: bool = True) -> list[Registry]:
    """Register the registries of a repository (cloning it unless `fetch=False`)."""
    url = url.strip()
    if not url:
        raise ConfigError("registry URL is empty")
    derived = Registry(name=check_name(name or _name_from_url(url)), url=url)
    if fetch:
        try:
            commit = git.sparse_clone(url, derived.clone_dir, [".sparkrun"])
            manifest = parse_manifest(derived.clone_dir, url)
        except git.GitFailed as exc:
            raise ConfigError(f"cannot clone {url}: {exc.cause}", hint="check the URL and the network") from exc
        found = manifest if manifest is not None else [replace(derived, recipes=_guess_recipes(derived.clone_dir))]
        chosen = [replace(r, commit=commit, updated=_now(), origin="user") for r in _select(found, name, url)]
    else:
        chosen = [derived]
    with editing(store):
        clashes = sorted({r.name for r in chosen} & {r.name for r in store})
        if clashes:
            raise ConfigError(
                f"a registry named {clashes[0]!r} already exists", hint=f"sparkrun registry remove {clashes[0]}"
            )
        chosen = [replace(r, trusted=trust, trusted_url=url if trust else None) for r in chosen]
        store.registries.extend(chosen)
        if fetch:
            _apply_sparse(store, url)
    return chosen


def _name_from_url(url: str) -> str:
    tail = url.rstrip("/").removesuffix(".git").rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", tail).strip("-.") or "registry"


def _guess_recipes(repo: Path) -> str:
    try:
        return "recipes" if git.tree_has_dir(repo, "recipes") else ""
    except git.GitFailed:
        return ""


def _apply_sparse(store: RegistryStore, url: str) -> None:
    repo = clone_dir_for(url)
    try:
        git.set_sparse_paths(repo, _sparse_paths(store.sharing(url)))
    except git.GitFailed as exc:
        raise ConfigError(f"cannot check out registry files in {repo}: {exc.cause}") from exc


def remove(store: RegistryStore, name: str) -> Registry:
    with editing(store):
        reg = store.get(name)
        store.registries = [r for r in store.registries if r.name != name]
        if not store.sharing(reg.url):
            git.remove_clone(reg.clone_dir)
        elif reg.cloned:
            _apply_sparse(store, reg.url)
    return reg


def set_flag(store: RegistryStore, name: str, **changes: Any) -> Registry:
    with editing(store):
        reg = store.get(name)
        if changes.get("trusted") is True:
            changes["trusted_url"] = reg.url
        elif changes.get("trusted") is False:
            changes["trusted_url"] = None
        updated = replace(reg, **changes)
        store.put(updated)
    return updated


def _expand_recorded(store: RegistryStore, url: str, manifest: list[Registry], notify: Notify) -> None:
    """A registry recorded with `add --no-update` whose name the manifest does not declare: when the manifest
    declares several registries, register those (keeping the recorded flags) instead."""
    declared = {r.name for r in manifest}
    for stale in [r for r in store.sharing(url) if r.commit is None and r.name not in declared]:
        if len(manifest) < 2:
            continue
        taken = {r.name for r in store} - {stale.name}
        fresh = [
            replace(m, enabled=stale.enabled, trusted=stale.trusted, trusted_url=stale.trusted_url)
            for m in manifest
            if m.name not in taken
        ]
        at = store.registries.index(stale)
        store.registries[at : at + 1] = fresh
        notify(f"registry {stale.name}: {url} declares {', '.join(sorted(declared))}; registered those instead")


def _refresh_from_manifest(store: RegistryStore, url: str, commit: str, notify: Notify) -> None:
    manifest = parse_manifest(clone_dir_for(url), url) or []
    _expand_recorded(store, url, manifest, notify)
    declared = {r.name: r for r in manifest}
    sharing = store.sharing(url)
    for reg in sharing:
        fresh = declared.get(reg.name) or (manifest[0] if len(manifest) == 1 and len(sharing) == 1 else None)
        paths = {k: getattr(fresh, k) for k in ("recipes", "tuning", "benchmarks", "mods")} if fresh else {}
        store.put(replace(reg, commit=commit, updated=_now(), **paths))


def update(store: RegistryStore, names: list[str] | None, notify: Notify) -> list[tuple[Registry, str]]:
    """Clone or fast-forward the named (default: all enabled) registries. Returns (registry, outcome) pairs;
    an unreachable remote with a local clone is a note, not an error."""
    selected = [store.get(n) for n in names] if names else store.enabled()
    results: list[tuple[Registry, str]] = []
    known_before = {r.name for r in store}
    for url in dict.fromkeys(r.url for r in selected):
        group = [r for r in selected if r.url == url]
        before = group[0].commit
        repo = clone_dir_for(url)
        try:
            if (repo / ".git").exists():
                commit = git.fetch_latest(repo)
            else:
                commit = git.sparse_clone(url, repo, _sparse_paths(store.sharing(url)))
            _refresh_from_manifest(store, url, commit, notify)
            _apply_sparse(store, url)
            outcome = "unchanged" if before == commit else f"{(before or 'new')[:10]} -> {commit[:10]}"
        except (git.GitFailed, ConfigError) as exc:
            cause = exc.cause if isinstance(exc, git.GitFailed) else exc.message
            names_ = ", ".join(r.name for r in group)
            if (repo / ".git").exists():
                notify(f"registry {names_}: cannot update ({cause}); using the cached copy at {(before or '?')[:10]}")
                outcome = "cached"
            else:
                notify(f"registry {names_}: cannot clone {url} ({cause})")
                outcome = "failed"
        names_now = {r.name for r in store}
        results += [(store.get(r.name), outcome) for r in group if r.name in names_now]
        results += [(r, outcome) for r in store.sharing(url) if r.name not in known_before]
    _save_updated(store, {r.url for r in selected})
    return results


def _save_updated(store: RegistryStore, urls: set[str]) -> None:
    """An update's entries for `urls` into the list on disk now (order kept; others kept; replaced ones dropped)."""
    updated = {r.name: r for r in store.registries if r.url in urls}
    with editing(store):
        kept = [updated.pop(r.name, r) for r in store.registries if r.name in updated or r.url not in urls]
        store.registries = [*kept, *updated.values()]


@contextmanager
def editing(store: RegistryStore) -> Iterator[RegistryStore]:
    """One change of the list under the config lock, on what is on disk now (saved after): nothing is ever lost."""
    with config_lock():
        if state_file().exists():  # else `store` is where the list starts (the defaults, or a caller's)
            fresh = RegistryStore.load()
            store.registries, store.from_defaults = fresh.registries, fresh.from_defaults
        yield store
        store.save()


def ensure_cloned(store: RegistryStore, reg: Registry, notify: Notify) -> Registry:
    """First use of `@name/...` for a registry never downloaded: clone it now (one note), else raise."""
    if reg.cloned:
        return reg
    notify(f"registry {reg.name}: downloading {reg.url} (first use)")
    results = update(store, [reg.name], notify)
    if results and results[0][1] == "failed":
        raise ConfigError(
            f"registry {reg.name!r} is not downloaded and {reg.url} cannot be reached",
            hint="connect to the network and run `sparkrun registry update`",
        )
    return store.get(reg.name)


def revert_to_defaults() -> None:
    """Forget the configured list (clones stay in the cache); the shipped defaults apply again."""
    with config_lock():
        state_file().unlink(missing_ok=True)


def recipe_files(reg: Registry) -> list[Path]:
    """Recipe files of a cloned registry (hidden directories skipped)."""
    root = reg.recipe_dir
    if not root.is_dir():
        return []
    found = [p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()]
    return sorted(p for p in found if not any(part.startswith(".") for part in p.relative_to(root).parts))
