"""A merged, migrated recipe document → the typed fields of a `Recipe`, with every problem found as an `Issue`.

Structural types are checked here (a mapping where a mapping belongs, hooks as strings or {command, timeout}); the
values of settings are typed later against the engine that reads them (`value_types.py`), except the keys sparkrun
reads itself (port, parallelism). Keys sparkrun does not act on only warn when their type is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sparkrun.recipes.document import Document
from sparkrun.recipes.model import KNOWN_KEYS, Issue, Recipe, RecipeSource, freeze
from sparkrun.recipes.overrides import parse_overrides
from sparkrun.recipes.readiness import parse_readiness
from sparkrun.recipes.render import format_value
from sparkrun.recipes.value_types import OWN_CHECKS

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
# keys sparkrun does not act on: a wrong type is a warning (the value is dropped), since nothing runs differently
INFO_KEYS = frozenset(
    {
        "description",
        "name",
        "maintainer",
        "runtime_version",
        "sparkrun_version",
        "metadata",
        "benchmark",
        # read by nothing in sparkrun (it runs every recipe with docker and builds no images)
        "builder",
        "builder_config",
        "scheduler",
        "distribution_config",
    }
)


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


def _lists(b: _Builder) -> dict[str, tuple[Any, ...]]:
    containers = b.listing("containers")
    if any(not isinstance(c, dict) for c in containers):
        b.error("containers", "expected a list of {host, image} mappings")
        containers = ()
    mods = b.listing("mods")
    if any(not isinstance(m, str) for m in mods):
        b.error("mods", "expected a list of mod directory names")
        mods = ()
    return {"containers": containers, "mods": mods, **{k: b.hooks(k) for k in HOOK_KEYS}}


def _basics(b: _Builder) -> dict[str, Any]:
    """model, command, the text keys, and the description (falling back to `metadata.description`)."""
    text = {key: b.text(key) for key in STR_KEYS}
    model = b.text("model")
    if not model:
        b.error("model", "a recipe needs `model:` (a Hugging Face repo id, repo:QUANT or a path)", "missing-model")
    command = b.doc.data.get("command")
    if command is not None and not isinstance(command, str):
        b.error("command", f"expected the serve command as a string, got {_describe(command)}")
        command = None
    metadata = b.mapping("metadata")
    meta_description = metadata.get("description")
    description = text.pop("description") or (meta_description if isinstance(meta_description, str) else "")
    return {
        **text,
        "model": model or "",
        "command": command,
        "description": description.strip(),
        "metadata": freeze(metadata),
    }


def build_recipe(doc: Document, source: RecipeSource, brace_escapes: bool, issues: list[Issue]) -> Recipe:
    b = _Builder(doc)
    b.issues += _duplicates(doc)
    fields = _basics(b)
    runtime_config = dict(b.mapping("runtime_config"))
    unknown = _sweep_unknown(b, runtime_config)
    overrides, override_issues = parse_overrides(doc)
    own = ("defaults", "runtime_config", "readiness", "metadata")
    fields.update({k: freeze(b.mapping(k)) for k in MAPPING_KEYS if k not in own})
    fields.update(_lists(b), readiness=freeze(b.readiness()))
    fields.update({k: doc.data.get(k) for k in PASSTHROUGH_KEYS})
    located = replace(
        source,
        trusted=source.trusted and doc.trusted,
        locations=dict(doc.locations),
        include_chain=tuple(doc.chain),
    )
    return Recipe(
        source=located,
        recipe_version=str(doc.data.get("recipe_version") or "2"),
        min_nodes=b.node_count("min_nodes"),
        max_nodes=b.node_count("max_nodes"),
        solo_only=b.flag("solo_only"),
        cluster_only=b.flag("cluster_only"),
        stop_after_post=bool(b.flag("stop_after_post")),
        defaults=freeze(b.defaults()),
        env=freeze(b.env()),
        runtime_config=freeze(runtime_config),
        overrides=overrides,
        brace_escapes=brace_escapes,
        unknown_keys=unknown,
        issues=(*issues, *b.issues, *override_issues),
        document=freeze(doc.data),
        **fields,
    )
