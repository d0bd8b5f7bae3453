"""`recipe validate`: every problem in a recipe, each with a severity, a code, where it is, and whether the older
sparkrun would accept the recipe anyway (`compat.py`).

Errors stop a recipe from running (exit 3); warnings are things that will probably not do what the author meant
(exit 8 under `--strict`); suggestions are style. The runtime registry and the mod finder are parameters so tests
use fakes. Setting values are typed against the engine that reads them (`value_types.py`): an error only where that
engine's parser refuses the value, a warning where sparkrun cannot know.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sparkrun.errors import ExitCode, PluginError, SparkrunError
from sparkrun.recipes.checks import (
    check_command,
    check_hooks,
    check_misc,
    check_mods,
    check_runtime,
    check_unmapped,
)
from sparkrun.recipes.compat import older_tool_accepts, older_tool_accepts_all
from sparkrun.recipes.model import SEVERITIES, Issue, Recipe
from sparkrun.recipes.mods import ModDirs, find_mod_dirs
from sparkrun.recipes.overrides import PlatformFacts
from sparkrun.recipes.request import RuntimeLookup
from sparkrun.recipes.resolved import used_keys
from sparkrun.recipes.runtime_choice import resolve_runtime_name
from sparkrun.recipes.value_chain import build_settings
from sparkrun.recipes.value_types import check_setting_values


@dataclass(frozen=True)
class Report:
    ref: str
    recipe: Recipe | None
    issues: tuple[Issue, ...]
    runtime: str | None = None

    def count(self, severity: str) -> int:
        return sum(1 for i in self.issues if i.severity == severity)

    @property
    def older_tool_accepts(self) -> bool:
        return older_tool_accepts_all(self.issues)

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
            "older_tool_accepts": self.older_tool_accepts,
            "errors": self.count("error"),
            "warnings": self.count("warning"),
            "suggestions": self.count("suggestion"),
            "issues": [{**i.to_json(), "older_tool_accepts": older_tool_accepts(i)} for i in self.issues],
        }


def _errors(issues: list[Issue]) -> bool:
    return any(i.severity == "error" for i in issues)


def validate_recipe(
    recipe: Recipe,
    runtimes: RuntimeLookup,
    *,
    platform: PlatformFacts | None = None,
    mods: Callable[[Recipe], ModDirs] = find_mod_dirs,
) -> Report:
    """All issues of a loaded recipe (load-time issues included), errors first."""
    facts = platform or PlatformFacts()
    issues = list(recipe.issues)
    name = resolve_runtime_name(recipe)
    try:
        runtime = runtimes.get(name)
    except PluginError as exc:
        issues.append(Issue("error", "unknown-runtime", exc.message, recipe.where("runtime"), "runtime", exc.hint))
        return _report(recipe, issues, name)
    issues += check_misc(recipe) + check_mods(recipe, mods)
    if _errors(issues):
        return _report(recipe, issues, name)
    settings = build_settings(recipe, runtime, {}, [], platform=facts)
    used = used_keys(recipe, runtime, settings)
    family = runtime.family or runtime.name
    value_issues = check_setting_values(recipe, settings, family=family, runtime=runtime.name, used=used)
    command_issues = check_command(recipe, dict(settings))
    issues += value_issues + command_issues + check_hooks(recipe, dict(settings)) + check_unmapped(recipe, runtime)
    if not _errors(value_issues + command_issues):
        issues += check_runtime(recipe, runtime, facts, settings)
    return _report(recipe, issues, name)


def _report(recipe: Recipe, issues: list[Issue], runtime: str | None) -> Report:
    ordered = sorted(issues, key=lambda i: SEVERITIES.index(i.severity))
    return Report(recipe.source.ref, recipe, tuple(ordered), runtime)


def failed_report(ref: str, exc: SparkrunError) -> Report:
    """A recipe that could not even be loaded: one error."""
    where, _, message = exc.message.partition(": ") if ": " in exc.message else ("", "", exc.message)
    issue = Issue("error", "load-error", message or exc.message, where or None, None, exc.hint)
    return Report(ref, None, (issue,))
