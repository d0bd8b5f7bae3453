"""The recipe as data: `Recipe` (format v2; v1 recipes are migrated on load), where it came from (`RecipeSource`) and
what the loader or validator found wrong with it (`Issue`).

Everything here is frozen and pure. Key paths are written the way users read them: `defaults.port`, `pre_exec[2]`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

OriginKind = Literal["file", "cwd", "registry", "url", "builtin"]
Severity = Literal["error", "warning", "suggestion"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "suggestion")

# The recipe format this module implements, as spelled by the older tool (0.4.2); `min_sparkrun_version` is compared
# against it (our own version numbers started again at 0.1).
FORMAT_COMPAT_VERSION = (0, 4, 2)

# Every top-level key the v2 format documents. Anything else is swept into `runtime_config` with a warning.
KNOWN_KEYS: frozenset[str] = frozenset(
    [
        "recipe_version",
        "sparkrun_version",
        "min_sparkrun_version",
        "model",
        "model_revision",
        "runtime",
        "runtime_version",
        "container",
        "containers",
        "min_nodes",
        "max_nodes",
        "mode",
        "solo_only",
        "cluster_only",
        "defaults",
        "env",
        "command",
        "runtime_config",
        "metadata",
        "description",
        "name",
        "benchmark",
        "pre_exec",
        "post_exec",
        "post_commands",
        "stop_after_post",
        "mods",
        "builder",
        "builder_config",
        "executor",
        "executor_config",
        "scheduler",
        "distribution_config",
        "layout",
        "cluster_config",
        "runtime_cache",
        "readiness",
        "capabilities",
        "unsupported_capabilities",
        "include",
        "overrides",
        "maintainer",
    ]
)

EMPTY: Mapping[str, Any] = MappingProxyType({})


def freeze(data: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A read-only view of a mapping (shallow: nested values are the YAML data as loaded)."""
    return MappingProxyType(dict(data)) if data else EMPTY


def format_path(path: tuple[str | int, ...]) -> str:
    """('defaults', 'port') -> 'defaults.port'; ('pre_exec', 2) -> 'pre_exec[2]'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True)
class Issue:
    """One finding about a recipe. `where` is `file:line` (or just the file) and `key` the dotted key path."""

    severity: Severity
    code: str
    message: str
    where: str | None = None
    key: str | None = None
    hint: str | None = None

    def line(self) -> str:
        """`recipe.yaml:12: defaults.port: expected an integer, got "abc"`."""
        parts = [p for p in (self.where, self.key) if p]
        return ": ".join([*parts, self.message])

    @property
    def file(self) -> str | None:
        """The file part of `where` (None for findings about the command line)."""
        if not self.where or self.where == "command line":
            return None
        head, sep, tail = self.where.rpartition(":")
        return head if sep and tail.isdigit() else self.where

    @property
    def line_number(self) -> int | None:
        head, sep, tail = (self.where or "").rpartition(":")
        return int(tail) if sep and head and tail.isdigit() else None

    def to_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "where": self.where,
            "file": self.file,
            "line": self.line_number,
            "key": self.key,
            "hint": self.hint,
        }


@dataclass(frozen=True)
class RecipeSource:
    """Where a recipe came from and whether it may run hooks and isolation-breaking settings without `--trust`."""

    name: str  # file stem: what `sparkrun list` shows and `sparkrun run NAME` accepts
    kind: OriginKind
    trusted: bool
    path: Path | None = None  # the local file (for a URL: the cached copy)
    registry: str | None = None
    url: str | None = None  # http(s) recipes: the URL; registry recipes: the registry's git URL
    relpath: str | None = None  # path inside the registry's recipe directory, without extension
    # dotted key path -> "file:line", for every key of the merged document (include members included)
    locations: Mapping[str, str] = field(default_factory=dict)
    include_chain: tuple[str, ...] = ()  # display names of the included files, outermost first

    @property
    def display(self) -> str:
        """How messages name the file: a local path, `@registry/path.yaml` or the URL."""
        if self.kind == "registry" and self.registry:
            return f"@{self.registry}/{self.relpath or self.name}.yaml"
        if self.kind == "url" and self.url:
            return self.url
        return str(self.path) if self.path is not None else self.name

    @property
    def ref(self) -> str:
        """The shortest reference that resolves back to this recipe."""
        if self.kind == "registry" and self.registry:
            return f"@{self.registry}/{self.name}"
        if self.kind == "url" and self.url:
            return self.url
        if self.kind in ("file",) and self.path is not None:
            return str(self.path)
        return self.name

    def where(self, key: str | None = None) -> str:
        """`file:line` of a key (or of its closest parent that has a line), else the file."""
        probe = key
        while probe:
            found = self.locations.get(probe)
            if found:
                return found
            cut = max(probe.rfind("."), probe.rfind("["))
            probe = probe[:cut] if cut > 0 else ""
        return self.display


@dataclass(frozen=True)
class Override:
    """One `overrides:` entry: when every selector in `when` matches, its values sit above the recipe's."""

    index: int
    when: Mapping[str, Any]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    container: str | None = None


@dataclass(frozen=True)
class Recipe:
    """A loaded recipe (format v2). Fields mirror the documented keys; unknown keys live in `runtime_config`."""

    source: RecipeSource
    model: str
    recipe_version: str = "2"
    sparkrun_version: str | None = None
    min_sparkrun_version: str | None = None
    model_revision: str | None = None
    runtime: str | None = None  # as declared; see `runtime_choice.resolve_runtime_name` for the effective one
    runtime_version: str | None = None
    container: str | None = None
    containers: tuple[Mapping[str, Any], ...] = ()
    min_nodes: int | None = None
    max_nodes: int | None = None
    mode: str | None = None
    solo_only: bool | None = None
    cluster_only: bool | None = None
    defaults: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    env: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    command: str | None = None
    runtime_config: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    metadata: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    description: str = ""
    name: str | None = None  # the declared `name:` (ignored: the recipe's name is its file stem)
    benchmark: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    pre_exec: tuple[Any, ...] = ()
    post_exec: tuple[Any, ...] = ()
    post_commands: tuple[Any, ...] = ()
    stop_after_post: bool = False
    mods: tuple[str, ...] = ()
    builder: str | None = None
    builder_config: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    executor: str | None = None
    executor_config: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    scheduler: str | None = None
    distribution_config: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    layout: Any = None
    cluster_config: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    runtime_cache: Any = None
    readiness: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    capabilities: Any = None
    unsupported_capabilities: Any = None
    include: str | None = None
    overrides: tuple[Override, ...] = ()
    maintainer: str | None = None
    # v1 templates (and v2 templates that use `{{`) write literal braces doubled; the renderer undoubles them.
    brace_escapes: bool = False
    unknown_keys: tuple[str, ...] = ()
    issues: tuple[Issue, ...] = ()  # what the loader found (migration notes, type errors in lenient mode)
    document: Mapping[str, Any] = field(
        default_factory=lambda: EMPTY
    )  # the merged, migrated document (for `show --json`)

    @property
    def display_name(self) -> str:
        return self.source.name

    def where(self, key: str | None = None) -> str:
        return self.source.where(key)

    @property
    def hooks(self) -> dict[str, tuple[Any, ...]]:
        return {"pre_exec": self.pre_exec, "post_exec": self.post_exec, "post_commands": self.post_commands}
