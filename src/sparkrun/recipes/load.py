"""YAML file → `Recipe`: parse with a line index, migrate v1, apply `include:`, check types, sweep unknown keys.

`load_recipe(..., strict=True)` (what `run` uses) raises the first error as a one-line `RecipeError` naming the file,
line and key path. `strict=False` (what `recipe validate` uses) keeps going and records every problem in
`Recipe.issues`; only a file that cannot be read or parsed at all still raises.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sparkrun.errors import RecipeError
from sparkrun.recipes.document import Document, merge_documents, parse_document
from sparkrun.recipes.migrate import migrate
from sparkrun.recipes.model import KNOWN_KEYS, Issue, Recipe, RecipeSource, freeze
from sparkrun.recipes.overrides import parse_overrides
from sparkrun.recipes.readiness import parse_readiness
from sparkrun.recipes.render import format_value
from sparkrun.recipes.value_types import OWN_CHECKS

MAX_INCLUDE_DEPTH = 8
RECIPE_SUFFIXES = (".yaml", ".yml")

STR_KEYS = (
    "model_revision",
    "runtime",
    "runtime_version",
    "container",
    "description",
    "name",
    "builder",
    "executor",
    "scheduler",
    "include",
    "maintainer",
    "min_sparkrun_version",
    "sparkrun_version",
    "mode",
)
MAPPING_KEYS = (
    "defaults",
    "runtime_config",
    "metadata",
    "benchmark",
    "builder_config",
    "executor_config",
    "distribution_config",
    "cluster_config",
    "readiness",
)
HOOK_KEYS = ("pre_exec", "post_exec", "post_commands")
PASSTHROUGH_KEYS = ("layout", "runtime_cache", "capabilities", "unsupported_capabilities")
# informational keys: a wrong type is a warning (the value is dropped), since nothing runs differently because of it
INFO_KEYS = frozenset(
    {"description", "name", "maintainer", "runtime_version", "sparkrun_version", "metadata", "benchmark"}
)


@dataclass(frozen=True)
class IncludeTarget:
    """A resolved `include:` reference."""

    identity: str  # resolved path or URL: detects cycles
    display: str
    text: str
    trusted: bool
    directory: Path | None  # where the base's own sibling includes are looked up


# (reference, directory of the including file) -> the included document
IncludeResolver = Callable[[str, Path | None], IncludeTarget]


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise RecipeError(f"{path}: no such recipe file") from exc
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{path}: not a text file (UTF-8 expected)") from exc
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read recipe: {exc.strerror}") from exc


def sibling_file(ref: str, directory: Path | None) -> Path | None:
    """`ref`, `ref.yaml` or `ref.yml` next to the including file."""
    if directory is None:
        return None
    base = directory / ref
    for candidate in (base, *(base.with_name(base.name + s) for s in RECIPE_SUFFIXES)):
        if candidate.is_file():
            return candidate
    return None


def sibling_resolver(ref: str, directory: Path | None) -> IncludeTarget:
    """The default include resolver: sibling files only (registry references need `resolve.include_resolver`)."""
    found = sibling_file(ref, directory)
    if found is None:
        raise RecipeError(f"include {ref!r}: no such file next to the recipe", hint="include a sibling file's name")
    return IncludeTarget(str(found.resolve()), str(found), read_text(found), True, found.parent)


def _load_tree(
    target: IncludeTarget, resolver: IncludeResolver, chain: list[str]
) -> tuple[Document, list[Issue], bool]:
    doc = parse_document(target.text, target.display, trusted=target.trusted)
    migration = migrate(doc)
    issues = list(migration.issues)
    ref = doc.data.get("include")
    if ref is None:
        return doc, issues, migration.brace_escapes
    where = doc.where("include")
    if not isinstance(ref, str) or not ref.strip():
        raise RecipeError(f"{where}: include: expected a recipe reference, got {ref!r}")
    if len(chain) > MAX_INCLUDE_DEPTH:
        raise RecipeError(f"{where}: include: chain deeper than {MAX_INCLUDE_DEPTH} files", hint=" -> ".join(chain))
    try:
        base = resolver(ref.strip(), target.directory)
    except RecipeError as exc:
        raise RecipeError(f"{where}: {exc.message}", hint=exc.hint) from exc
    if base.identity in chain:
        loop = " -> ".join([*chain, base.identity])
        raise RecipeError(f"{where}: include: cycle: {loop}", hint="remove one of the include: lines")
    base_doc, base_issues, base_escapes = _load_tree(base, resolver, [*chain, base.identity])
    escapes = migration.brace_escapes if "command" in doc.data else base_escapes
    return merge_documents(base_doc, doc), [*base_issues, *issues], escapes


class _Builder:
    """Collects typed fields and issues from a merged document."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.issues: list[Issue] = []

    def error(self, key: str, message: str, code: str = "invalid-type", hint: str | None = None) -> None:
        if code == "invalid-type" and key in INFO_KEYS:
            self.issues.append(
                Issue(
                    "warning",
                    "ignored-value",
                    f"{message}; ignored",
                    self.doc.where(key),
                    key,
                    "it is informational only: fix or delete it",
                )
            )
            return
        self.issues.append(Issue("error", code, message, self.doc.where(key), key, hint))

    def text(self, key: str) -> str | None:
        value = self.doc.data.get(key)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        self.error(key, f"expected a string, got {_describe(value)}")
        return None

    def mapping(self, key: str) -> Mapping[str, Any]:
        value = self.doc.data.get(key)
        if value is None:
            return {}
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return value
        self.error(key, f"expected a mapping, got {_describe(value)}")
        return {}

    def node_count(self, key: str) -> int | None:
        value = self.doc.data.get(key)
        if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        self.error(key, f"expected a whole number >= 1, got {_describe(value)}")
        return None

    def flag(self, key: str) -> bool | None:
        value = self.doc.data.get(key)
        if value is None or isinstance(value, bool):
            return value
        self.error(key, f"expected true or false, got {_describe(value)}")
        return None

    def listing(self, key: str) -> tuple[Any, ...]:
        value = self.doc.data.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list):
            return tuple(value)
        self.error(key, f"expected a list, got {_describe(value)}")
        return ()

    def hooks(self, key: str) -> tuple[Any, ...]:
        entries = self.listing(key)
        for i, entry in enumerate(entries):
            where = f"{key}[{i}]"
            if isinstance(entry, dict) and "copy" in entry and "command" not in entry:
                self.error(
                    where,
                    "`copy:` entries are not supported",
                    "unsupported-hook",
                    "send files with `mods:` (a directory with a run.sh) instead",
                )
            elif not (isinstance(entry, str) or (isinstance(entry, dict) and isinstance(entry.get("command"), str))):
                self.error(where, "a hook is a command string or {command, timeout}", "invalid-hook")
            elif isinstance(entry, dict) and not _seconds(entry.get("timeout", 1)):
                self.error(
                    f"{where}.timeout", f"expected a number of seconds, got {entry.get('timeout')!r}", "invalid-hook"
                )
        return entries

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in self.mapping("env").items():
            if value is None:
                continue
            if isinstance(value, dict | list):
                self.error(f"env.{name}", f"expected a string, got {_describe(value)}")
            else:
                out[name] = env_text(value)
        return out

    def defaults(self) -> Mapping[str, Any]:
        """As written. The keys sparkrun reads itself (port, parallelism) are checked here; engine values later,
        against the engine that reads them (`value_types.py`)."""
        defaults = {k: v for k, v in self.mapping("defaults").items() if v is not None}
        for key, check in OWN_CHECKS.items():
            finding = check(format_value(defaults[key])) if key in defaults else None
            if finding is not None:
                self.error(f"defaults.{key}", finding[1], "invalid-setting")
        return defaults

    def readiness(self) -> Mapping[str, Any]:
        data = self.mapping("readiness")
        self.issues += parse_readiness(data, self.doc.where)[1]
        return data


def _seconds(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False


def env_text(value: Any) -> str:
    """Environment values are strings; YAML booleans are written the way shells and engines read them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _sweep_unknown(b: _Builder, runtime_config: dict[str, Any]) -> tuple[str, ...]:
    unknown = [k for k in b.doc.data if k not in KNOWN_KEYS]
    for key in unknown:
        runtime_config.setdefault(key, b.doc.data[key])
    legacy = [k for k in unknown if k == "build_args"]
    if legacy:
        b.issues.append(
            Issue(
                "warning",
                "deprecated-build-args",
                "build_args is a v1 key; kept as runtime_config.build_args",
                b.doc.where("build_args"),
                "build_args",
                "move it under runtime_config: (or builder_config:)",
            )
        )
    rest = [k for k in unknown if k != "build_args"]
    if rest:
        b.issues.append(
            Issue(
                "warning",
                "unknown-top-level-key",
                f"unknown top-level key{'s' if len(rest) > 1 else ''} {', '.join(rest)}: kept in runtime_config, "
                "where only a runtime that asks for them by name reads them",
                b.doc.where(rest[0]),
                rest[0],
                "check the spelling; serve flags belong under defaults:",
            )
        )
    return tuple(unknown)


def _duplicates(doc: Document) -> list[Issue]:
    out = []
    for entry in doc.duplicates:
        where, _, key = entry.partition(" ")
        out.append(
            Issue(
                "warning",
                "duplicate-key",
                "written more than once; this later value wins",
                where,
                key,
                "delete the earlier one",
            )
        )
    return out


def build_recipe(doc: Document, source: RecipeSource, brace_escapes: bool, issues: list[Issue]) -> Recipe:
    b = _Builder(doc)
    b.issues += _duplicates(doc)
    text = {key: b.text(key) for key in STR_KEYS}
    model = b.text("model")
    if not model:
        b.error("model", "a recipe needs `model:` (a Hugging Face repo id, repo:QUANT or a path)", "missing-model")
    command = doc.data.get("command")
    if command is not None and not isinstance(command, str):
        b.error("command", f"expected the serve command as a string, got {_describe(command)}")
        command = None
    runtime_config = dict(b.mapping("runtime_config"))
    unknown = _sweep_unknown(b, runtime_config)
    metadata = b.mapping("metadata")
    meta_description = metadata.get("description")
    description = text["description"] or (meta_description if isinstance(meta_description, str) else "")
    overrides, override_issues = parse_overrides(doc)
    containers = b.listing("containers")
    if any(not isinstance(c, dict) for c in containers):
        b.error("containers", "expected a list of {host, image} mappings")
        containers = ()
    mods = b.listing("mods")
    if any(not isinstance(m, str) for m in mods):
        b.error("mods", "expected a list of mod directory names")
        mods = ()
    fields: dict[str, Any] = {k: text[k] for k in STR_KEYS if k not in ("description",)}
    fields.update(
        {k: freeze(b.mapping(k)) for k in MAPPING_KEYS if k not in ("defaults", "runtime_config", "readiness")}
    )
    fields["readiness"] = freeze(b.readiness())
    fields.update({k: b.hooks(k) for k in HOOK_KEYS})
    fields.update({k: doc.data.get(k) for k in PASSTHROUGH_KEYS})
    located = replace(
        source,
        trusted=source.trusted and doc.trusted,
        locations=dict(doc.locations),
        include_chain=tuple(doc.chain),
    )
    return Recipe(
        source=located,
        model=model or "",
        recipe_version=str(doc.data.get("recipe_version") or "2"),
        description=description.strip(),
        min_nodes=b.node_count("min_nodes"),
        max_nodes=b.node_count("max_nodes"),
        solo_only=b.flag("solo_only"),
        cluster_only=b.flag("cluster_only"),
        stop_after_post=bool(b.flag("stop_after_post")),
        defaults=freeze(b.defaults()),
        env=freeze(b.env()),
        command=command,
        runtime_config=freeze(runtime_config),
        containers=tuple(containers),
        mods=tuple(mods),
        overrides=overrides,
        brace_escapes=brace_escapes,
        unknown_keys=unknown,
        issues=(*issues, *b.issues, *override_issues),
        document=freeze(doc.data),
        **fields,
    )


def _check_node_range(recipe: Recipe) -> Recipe:
    low, high = recipe.min_nodes, recipe.max_nodes
    if low is not None and high is not None and low > high:
        issue = Issue(
            "error",
            "invalid-node-range",
            f"min_nodes ({low}) is larger than max_nodes ({high})",
            recipe.where("min_nodes"),
            "min_nodes",
        )
        return replace(recipe, issues=(*recipe.issues, issue))
    return recipe


def load_text(
    text: str,
    source: RecipeSource,
    *,
    directory: Path | None = None,
    resolver: IncludeResolver | None = None,
    strict: bool = True,
) -> Recipe:
    root = IncludeTarget(
        identity=str(source.path.resolve()) if source.path else (source.url or source.name),
        display=source.display,
        text=text,
        trusted=source.trusted,
        directory=directory if directory is not None else (source.path.parent if source.path else None),
    )
    doc, issues, escapes = _load_tree(root, resolver or sibling_resolver, [root.identity])
    recipe = _check_node_range(build_recipe(doc, source, escapes, issues))
    if strict:
        raise_first_error(recipe)
    return recipe


def raise_first_error(recipe: Recipe) -> None:
    for issue in recipe.issues:
        if issue.severity == "error":
            raise RecipeError(issue.line(), hint=issue.hint or "run `sparkrun recipe validate` for every problem")


def load_recipe(
    path: Path, source: RecipeSource, *, resolver: IncludeResolver | None = None, strict: bool = True
) -> Recipe:
    return load_text(read_text(path), source, directory=path.parent, resolver=resolver, strict=strict)
