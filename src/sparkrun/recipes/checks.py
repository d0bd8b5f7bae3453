"""The checks `recipe validate` runs on a loaded recipe, each returning `Issue`s (see validate.py for the report).

Each check is pure: the runtime plugin and the mod finder are parameters, so tests use fakes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from sparkrun.errors import RecipeError, SparkrunError
from sparkrun.recipes.model import FORMAT_COMPAT_VERSION, Issue, Recipe, Severity
from sparkrun.recipes.mods import ModDirs
from sparkrun.recipes.overrides import PlatformFacts
from sparkrun.recipes.render import placeholders, render_template
from sparkrun.recipes.resolved import NodeRangeError, node_count, preview_topology, resolve
from sparkrun.recipes.settings_keys import HOOK_LAUNCH_KEYS, SPARKRUN_SETTING_KEYS
from sparkrun.recipes.trust import gated_items
from sparkrun.runtimes.base import Runtime

# what a hook may use besides settings (filled in at launch)
LAUNCH_PLACEHOLDERS = {k: f"<{k}>" for k in HOOK_LAUNCH_KEYS}
KNOWN_BUILDERS = frozenset({"docker-pull", "eugr"})  # what the older tool knows; sparkrun builds neither
_SHELL_VAR = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*")


def issue(recipe: Recipe, severity: Severity, code: str, key: str, message: str, hint: str | None = None) -> Issue:
    return Issue(severity, code, message, recipe.where(key), key, hint)


def from_error(recipe: Recipe, code: str, key: str, exc: SparkrunError, severity: Severity = "error") -> Issue:
    """An exception's one-line message as a finding (without the `file:line: key: ` prefix the finding carries)."""
    message = exc.message
    where = recipe.where(key)
    for prefix in (f"{where}: ", f"{key}: ", f"{recipe.source.name}: "):
        message = message.removeprefix(prefix)
    return Issue(severity, code, message, where, key, exc.hint)


def check_command(recipe: Recipe, values: Mapping[str, Any]) -> list[Issue]:
    if recipe.command is None:
        return []
    rendered = render_template(recipe.command, {**values, "model": recipe.model}, escapes=recipe.brace_escapes)
    issues = [
        issue(
            recipe,
            "error",
            "unresolved-placeholder",
            "command",
            f"placeholder {{{name}}} names nothing (no default, -o option or runtime value)",
            f"add `{name}:` under defaults:, or pass -o {name}=VALUE",
        )
        for name in rendered.missing
    ]
    model = recipe.model
    if model and re.search(r"(?<![\w/.:-])" + re.escape(model) + r"(?![\w/.:-])", recipe.command):
        issues.append(
            issue(
                recipe,
                "suggestion",
                "restated-model-arg",
                "command",
                f"the command repeats the model id {model!r} instead of using {{model}}",
                "write {model} so the command follows model: (and pre-placed weights)",
            )
        )
    return issues


def check_hooks(recipe: Recipe, values: Mapping[str, Any]) -> list[Issue]:
    issues: list[Issue] = []
    known = {**values, "model": recipe.model}
    for kind, entries in recipe.hooks.items():
        for i, entry in enumerate(entries):
            text = entry.get("command") if isinstance(entry, dict) else entry
            if not isinstance(text, str):
                continue
            rendered = render_template(
                text, known, escapes="{{" in text, launch=LAUNCH_PLACEHOLDERS, data=LAUNCH_PLACEHOLDERS, quote=True
            )
            issues += [
                issue(
                    recipe,
                    "error",
                    "unresolved-placeholder",
                    f"{kind}[{i}]",
                    f"placeholder {{{name}}} names nothing",
                    f"define `{name}` under defaults:, or write the text without braces",
                )
                for name in rendered.missing
            ]
    return issues


def _used_keys(recipe: Recipe) -> set[str]:
    texts = [recipe.command or ""]
    texts += [str(v) for v in recipe.defaults.values() if isinstance(v, str)]
    for entries in recipe.hooks.values():
        texts += [str(e.get("command") if isinstance(e, dict) else e) for e in entries]
    used: set[str] = set()
    for text in texts:
        names = placeholders(text, escapes=recipe.brace_escapes)
        used.update(name.removeprefix("config.").split(".")[0] for name in names)
    return used


def _spelled_out(recipe: Recipe, key: str) -> bool:
    """The command writes the key's flag literally (`enable_prefix_caching` ~ `--enable-prefix-caching`)."""
    if not recipe.command:
        return False
    flag = re.escape(key.replace("_", "-"))
    return re.search(rf"--{flag}(?![\w-])|--{re.escape(key)}(?!\w)", recipe.command) is not None


def check_unmapped(recipe: Recipe, runtime: Runtime) -> list[Issue]:
    known = SPARKRUN_SETTING_KEYS | _used_keys(recipe)
    if recipe.command is None:
        known |= runtime.mapped_keys()
    unmapped = sorted(k for k in recipe.defaults if k not in known and not _spelled_out(recipe, k))
    if not unmapped:
        return []
    how = "the command template does not use" if recipe.command else f"runtime {runtime.name!r} cannot map"
    message = f"{how} {', '.join(unmapped)}: no effect on the serve command"
    hint = "reference them in command: ({name}) or remove them"
    return [issue(recipe, "warning", "unmapped-default", f"defaults.{unmapped[0]}", message, hint)]


def _node_range(recipe: Recipe, settings: Mapping[str, Any], platform: PlatformFacts) -> tuple[int, list[Issue]]:
    """Hosts to preview with, and a warning when the recipe's own parallelism falls outside its node range (`run`
    refuses that launch until --tp/--pp fix it)."""
    try:
        return node_count(recipe, settings)[0], []
    except NodeRangeError as exc:
        if recipe.max_nodes is not None and exc.preview == recipe.max_nodes:
            found = from_error(recipe, "parallelism-exceeds-nodes", "max_nodes", exc, "warning")
            message = f"{found.message} ({platform.gpus_per_node} GPU per node)"
            return exc.preview, [Issue("warning", found.code, message, found.where, found.key, "lower the parallelism")]
        return exc.preview, [from_error(recipe, "parallelism-below-nodes", "min_nodes", exc, "warning")]


def check_runtime(
    recipe: Recipe, runtime: Runtime, platform: PlatformFacts, settings: Mapping[str, Any]
) -> list[Issue]:
    """What `run` would do, up to the runtime's rank plan (at the node count the recipe allows)."""
    nodes, issues = _node_range(recipe, settings, platform)
    try:
        resolved = resolve(recipe, runtime, nodes=nodes, platform=platform, mods=lambda _r: ModDirs())
    except RecipeError as exc:
        return [*issues, from_error(recipe, "invalid-command", "command", exc)]
    request = resolved.request
    try:  # plugin boundary: a runtime bug must become a report line, not a traceback
        runtime.build(request, preview_topology(resolved))
        warnings = runtime.validate(request)
    except SparkrunError as exc:
        return [*issues, from_error(recipe, "runtime-rejected", "command" if recipe.command else "runtime", exc)]
    except Exception as exc:
        message = f"runtime {runtime.name!r} failed on this recipe: {type(exc).__name__}: {exc}"
        hint = "this is a bug in the runtime plugin; please report it"
        return [*issues, issue(recipe, "error", "runtime-failed", "runtime", message, hint)]
    return issues + [issue(recipe, "warning", "runtime-check", "runtime", w) for w in warnings]


def check_mods(recipe: Recipe, find: Callable[[Recipe], ModDirs]) -> list[Issue]:
    return [
        Issue(
            "warning",
            "missing-mod",
            f"no directory {m.name!r} with a run.sh",
            recipe.where(f"mods[{m.index}]"),
            f"mods[{m.index}]",
            m.hint,
        )
        for m in find(recipe).missing
    ]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def check_misc(recipe: Recipe) -> list[Issue]:
    issues = [
        issue(
            recipe,
            "warning",
            "env-not-expanded",
            f"env.{name}",
            f"{value!r} reaches the container literally: the control machine's variables are never expanded",
            "write the value itself, or pass it with -e NAME=VALUE",
        )
        for name, value in recipe.env.items()
        if _SHELL_VAR.search(value)
    ]
    wanted = recipe.min_sparkrun_version
    if wanted and _version(wanted) > FORMAT_COMPAT_VERSION:
        message = f"written for sparkrun >= {wanted}; this sparkrun reads the 0.4.2 recipe format"
        issues.append(issue(recipe, "warning", "newer-format", "min_sparkrun_version", message))
    if (recipe.executor or "docker") != "docker":
        message = f"sparkrun runs every recipe with docker; executor {recipe.executor!r} is ignored"
        issues.append(issue(recipe, "warning", "unsupported-executor", "executor", message, "delete `executor:`"))
    if (recipe.builder or "docker-pull") not in KNOWN_BUILDERS:
        message = f"sparkrun builds no images; builder {recipe.builder!r} is ignored (the image must exist)"
        issues.append(issue(recipe, "warning", "unsupported-builder", "builder", message, "delete `builder:`"))
    if recipe.name and recipe.name != recipe.source.name:
        message = f"name: {recipe.name!r} is ignored; the recipe is called {recipe.source.name!r} after its file"
        issues.append(issue(recipe, "suggestion", "declared-name-ignored", "name", message, "rename the file"))
    items = gated_items(recipe) if not recipe.source.trusted else []
    if items:
        message = f"untrusted source: running it needs --trust for {len(items)} item(s): " + ", ".join(
            i.key for i in items[:5]
        )
        issues.append(
            issue(recipe, "suggestion", "needs-trust", items[0].key, message, "see `sparkrun registry trust`")
        )
    return issues
