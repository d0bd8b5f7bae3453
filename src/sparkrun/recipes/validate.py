"""`recipe validate`: every problem in a recipe, each with a severity, a code and where it is.

Errors stop a recipe from running (exit 3); warnings are things that will probably not do what the author meant
(exit 8 under `--strict`); suggestions are style. The runtime registry is a parameter so tests use fake runtimes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sparkrun.errors import ExitCode, PluginError, RecipeError, SparkrunError
from sparkrun.recipes.api import (
    RuntimeLookup,
    build_settings,
    plan_nodes,
    preview_topology,
    render_request,
    resolve_runtime_name,
)
from sparkrun.recipes.model import FORMAT_COMPAT_VERSION, SEVERITIES, Issue, Recipe
from sparkrun.recipes.overrides import PlatformFacts
from sparkrun.recipes.render import placeholders, render_template
from sparkrun.recipes.trust import gated_items
from sparkrun.runtimes.base import Runtime

# defaults keys sparkrun reads itself (topology, readiness, VRAM), so they are never "unmapped"
CORE_KEYS = frozenset(
    {
        "port",
        "host",
        "served_model_name",
        "tensor_parallel",
        "pipeline_parallel",
        "data_parallel",
        "gpu_memory_utilization",
        "max_model_len",
    }
)
# what a hook may use besides settings (filled in at launch)
LAUNCH_PLACEHOLDERS = {
    k: f"<{k}>" for k in ("head_host", "head_ip", "port", "cluster_id", "container_name", "cache_dir", "base_url")
}
_SHELL_VAR = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Report:
    ref: str
    recipe: Recipe | None
    issues: tuple[Issue, ...]
    runtime: str | None = None

    def count(self, severity: str) -> int:
        return sum(1 for i in self.issues if i.severity == severity)

    def exit_code(self, strict: bool, fail_on: str | None = None) -> ExitCode:
        """Errors: 3. Warnings under --strict (or --fail-on warning/suggestion): 8. `--fail-on none`: always 0."""
        if fail_on == "none":
            return ExitCode.OK
        if self.count("error"):
            return ExitCode.INPUT
        level = fail_on or ("warning" if strict else "error")
        failing = {"warning": ("warning",), "suggestion": ("warning", "suggestion")}.get(level, ())
        return ExitCode.WARNINGS if any(self.count(s) for s in failing) else ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.ref,
            "runtime": self.runtime,
            "valid": self.count("error") == 0,
            "errors": self.count("error"),
            "warnings": self.count("warning"),
            "suggestions": self.count("suggestion"),
            "issues": [i.to_json() for i in self.issues],
        }


def _issue(recipe: Recipe, severity: Any, code: str, key: str, message: str, hint: str | None = None) -> Issue:
    return Issue(severity, code, message, recipe.where(key), key, hint)


def _from_error(recipe: Recipe, code: str, key: str, exc: SparkrunError) -> Issue:
    message = exc.message
    where = recipe.where(key)
    if message.startswith(f"{where}: "):
        message = message[len(where) + 2 :]
    if message.startswith(f"{key}: "):
        message = message[len(key) + 2 :]
    return Issue("error", code, message, where, key, exc.hint)


def _check_command(recipe: Recipe, values: Mapping[str, Any]) -> list[Issue]:
    if recipe.command is None:
        return []
    issues: list[Issue] = []
    rendered = render_template(recipe.command, {**values, "model": recipe.model}, escapes=recipe.brace_escapes)
    for name in rendered.missing:
        issues.append(
            _issue(
                recipe,
                "error",
                "unresolved-placeholder",
                "command",
                f"placeholder {{{name}}} names nothing (no default, -o option or runtime value)",
                f"add `{name}:` under defaults:, or pass -o {name}=VALUE",
            )
        )
    model = recipe.model
    if model and re.search(r"(?<![\w/.:-])" + re.escape(model) + r"(?![\w/.:-])", recipe.command):
        issues.append(
            _issue(
                recipe,
                "suggestion",
                "restated-model-arg",
                "command",
                f"the command repeats the model id {model!r} instead of using {{model}}",
                "write {model} so the command follows model: (and pre-placed weights)",
            )
        )
    return issues


def _check_hooks(recipe: Recipe, values: Mapping[str, Any]) -> list[Issue]:
    issues: list[Issue] = []
    known = {**values, **LAUNCH_PLACEHOLDERS, "model": recipe.model}
    for kind, entries in recipe.hooks.items():
        for i, entry in enumerate(entries):
            text = entry.get("command") if isinstance(entry, dict) else entry
            if not isinstance(text, str):
                continue
            for name in render_template(text, known, escapes="{{" in text).missing:
                issues.append(
                    _issue(
                        recipe,
                        "error",
                        "unresolved-placeholder",
                        f"{kind}[{i}]",
                        f"placeholder {{{name}}} names nothing",
                        f"define `{name}` under defaults:, or write the text without braces",
                    )
                )
    return issues


def _used_keys(recipe: Recipe) -> set[str]:
    texts = [recipe.command or ""]
    texts += [str(v) for v in recipe.defaults.values() if isinstance(v, str)]
    for entries in recipe.hooks.values():
        texts += [str(e.get("command") if isinstance(e, dict) else e) for e in entries]
    used: set[str] = set()
    for text in texts:
        used.update(name.split(".")[0] for name in placeholders(text, escapes=recipe.brace_escapes))
    return used


def _spelled_out(recipe: Recipe, key: str) -> bool:
    """The command writes the key's flag literally (`enable_prefix_caching` ~ `--enable-prefix-caching`)."""
    if not recipe.command:
        return False
    flag = re.escape(key.replace("_", "-"))
    return re.search(rf"--{flag}(?![\w-])|--{re.escape(key)}(?!\w)", recipe.command) is not None


def _check_unmapped(recipe: Recipe, runtime: Runtime) -> list[Issue]:
    known = CORE_KEYS | _used_keys(recipe)
    if recipe.command is None:
        known |= runtime.mapped_keys()
    unmapped = sorted(k for k in recipe.defaults if k not in known and not _spelled_out(recipe, k))
    if not unmapped:
        return []
    how = "the command template does not use" if recipe.command else f"runtime {runtime.name!r} cannot map"
    return [
        _issue(
            recipe,
            "warning",
            "unmapped-default",
            f"defaults.{unmapped[0]}",
            f"{how} {', '.join(unmapped)}: no effect on the serve command",
            "reference them in command: ({name}) or remove them",
        )
    ]


def _check_runtime(recipe: Recipe, runtime: Runtime, platform: PlatformFacts) -> list[Issue]:
    try:
        settings = build_settings(recipe, runtime, {}, [], platform=platform)
        request = render_request(recipe, runtime, settings, image=None, extra_args=(), env={})
    except RecipeError as exc:
        return [_from_error(recipe, "invalid-command", "command", exc)]
    issues: list[Issue] = []
    ranks = int(settings.get("tensor_parallel") or 1) * int(settings.get("pipeline_parallel") or 1)
    if recipe.max_nodes and ranks > recipe.max_nodes * platform.gpus_per_node:
        issues.append(
            _issue(
                recipe,
                "warning",
                "parallelism-exceeds-nodes",
                "max_nodes",
                f"tensor x pipeline parallel = {ranks} ranks, but max_nodes is {recipe.max_nodes} "
                f"({platform.gpus_per_node} GPU per node)",
                "lower the parallelism or max_nodes",
            )
        )
    try:  # plugin boundary: a runtime bug must become a report line, not a traceback
        runtime.build(request, preview_topology(plan_nodes(recipe, settings, platform), settings))
        warnings = runtime.validate(request)
    except SparkrunError as exc:
        return [*issues, _from_error(recipe, "runtime-rejected", "command" if recipe.command else "runtime", exc)]
    except Exception as exc:
        return [
            *issues,
            _issue(
                recipe,
                "error",
                "runtime-failed",
                "runtime",
                f"runtime {runtime.name!r} failed on this recipe: {type(exc).__name__}: {exc}",
                "this is a bug in the runtime plugin; please report it",
            ),
        ]
    issues += [_issue(recipe, "warning", "runtime-check", "runtime", w) for w in warnings]
    return issues


def _check_misc(recipe: Recipe) -> list[Issue]:
    issues: list[Issue] = []
    for name, value in recipe.env.items():
        if _SHELL_VAR.search(value):
            issues.append(
                _issue(
                    recipe,
                    "warning",
                    "env-not-expanded",
                    f"env.{name}",
                    f"{value!r} reaches the container literally: the control machine's variables are never expanded",
                    "write the value itself, or pass it with -e NAME=VALUE",
                )
            )
    wanted = recipe.min_sparkrun_version
    if wanted and _version(wanted) > FORMAT_COMPAT_VERSION:
        issues.append(
            _issue(
                recipe,
                "warning",
                "newer-format",
                "min_sparkrun_version",
                f"written for sparkrun >= {wanted}; this sparkrun reads the 0.4.2 recipe format",
            )
        )
    if recipe.name and recipe.name != recipe.source.name:
        issues.append(
            _issue(
                recipe,
                "suggestion",
                "declared-name-ignored",
                "name",
                f"name: {recipe.name!r} is ignored; the recipe is called {recipe.source.name!r} after its file",
                "rename the file to rename the recipe",
            )
        )
    if not recipe.source.trusted:
        items = gated_items(recipe)
        if items:
            issues.append(
                _issue(
                    recipe,
                    "suggestion",
                    "needs-trust",
                    items[0].key,
                    f"untrusted source: running it needs --trust for {len(items)} item(s): "
                    + ", ".join(i.key for i in items[:5]),
                    "see `sparkrun registry trust`",
                )
            )
    return issues


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def validate_recipe(recipe: Recipe, runtimes: RuntimeLookup, *, platform: PlatformFacts | None = None) -> Report:
    """All issues of a loaded recipe (load-time issues included), errors first."""
    facts = platform or PlatformFacts()
    issues = list(recipe.issues)
    name = resolve_runtime_name(recipe)
    try:
        runtime = runtimes.get(name)
    except PluginError as exc:
        issues.append(Issue("error", "unknown-runtime", exc.message, recipe.where("runtime"), "runtime", exc.hint))
        return _report(recipe, issues, name)
    issues += _check_misc(recipe)
    if not any(i.severity == "error" for i in issues):
        values = dict(build_settings(recipe, runtime, {}, [], platform=facts))
        command_issues = _check_command(recipe, values)
        issues += command_issues + _check_hooks(recipe, values) + _check_unmapped(recipe, runtime)
        if not any(i.severity == "error" for i in command_issues):
            issues += _check_runtime(recipe, runtime, facts)
    return _report(recipe, issues, name)


def _report(recipe: Recipe, issues: list[Issue], runtime: str | None) -> Report:
    ordered = sorted(issues, key=lambda i: SEVERITIES.index(i.severity))
    return Report(recipe.source.ref, recipe, tuple(ordered), runtime)


def failed_report(ref: str, exc: SparkrunError) -> Report:
    """A recipe that could not even be loaded: one error."""
    where, _, message = exc.message.partition(": ") if ": " in exc.message else ("", "", exc.message)
    issue = Issue("error", "load-error", message or exc.message, where or None, None, exc.hint)
    return Report(ref, None, (issue,))
