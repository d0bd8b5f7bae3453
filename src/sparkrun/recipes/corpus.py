"""`python -m sparkrun.recipes.corpus DIR`: load, validate and render every recipe under DIR; print a report.

Recipe files are found through registry manifests (`.sparkrun/registry.yaml`: only the declared recipe directories)
or, in trees without one, as files under a `recipes/` directory or YAML mappings that look like recipes. Other YAML
(manifests, benchmark profiles, catalogues such as `models.yaml`) is skipped with a one-line note.

Exit status: 0 when every recipe loads and validates without errors, except recipes whose only error is a runtime
no installed plugin provides; 1 otherwise; 2 for bad usage. The summary also counts the recipes the older sparkrun
(0.4.2) would accept, predicted from its known rules (`compat.py`), and lists those where the verdicts differ.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparkrun.errors import SparkrunError
from sparkrun.plugins import load_runtimes
from sparkrun.recipes.document import parse_yaml
from sparkrun.recipes.load import load_recipe
from sparkrun.recipes.model import RecipeSource
from sparkrun.recipes.registry import MANIFEST
from sparkrun.recipes.request import RuntimeLookup
from sparkrun.recipes.show import describe
from sparkrun.recipes.validate import Report, failed_report, validate_recipe

EXCUSED = "unknown-runtime"


@dataclass
class Result:
    path: Path
    report: Report
    seconds: float
    rendered: int = 0  # ranks whose argv was built
    render_error: str | None = None

    @property
    def errors(self) -> list[str]:
        return [i.line() for i in self.report.issues if i.severity == "error"]

    @property
    def excused(self) -> bool:
        codes = {i.code for i in self.report.issues if i.severity == "error"}
        return codes == {EXCUSED}


@dataclass
class Survey:
    recipes: list[tuple[Path, str | None]] = field(default_factory=list)  # (file, registry name)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def _manifest_dirs(root: Path) -> tuple[dict[Path, str], dict[Path, str]]:
    """Recipe directories (→ registry name) and other declared directories (→ role) of one manifest."""
    data, _ = parse_yaml((root / MANIFEST).read_text(encoding="utf-8"), str(root / MANIFEST))
    recipes: dict[Path, str] = {}
    others: dict[Path, str] = {}
    for entry in (data or {}).get("registries") or []:
        if not isinstance(entry, dict):
            continue
        recipes[root / str(entry.get("recipes") or "recipes")] = str(entry.get("name"))
        for role in ("benchmarks", "tuning", "mods"):
            if entry.get(role):
                others[root / str(entry[role])] = role
    return recipes, others


def _looks_like_recipe(path: Path) -> str | None:
    """None when the file looks like a recipe, else why it does not."""
    try:
        data, _ = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    except SparkrunError:
        return "not a recipe: not valid YAML"
    except (OSError, UnicodeDecodeError):
        return "not a recipe: unreadable"
    if not isinstance(data, dict) or not ({"model", "recipe_version", "command"} & set(data)):
        return "not a recipe: no model/recipe_version/command (benchmark profile or other data)"
    return None


def _within(path: Path, dirs: dict[Path, str]) -> Path | None:
    return next((d for d in dirs if path.is_relative_to(d)), None)


def survey(top: Path) -> Survey:
    found = Survey()
    files = sorted(p for p in top.rglob("*") if p.suffix in (".yaml", ".yml") and ".git" not in p.parts)
    manifests = {m.parent.parent: _manifest_dirs(m.parent.parent) for m in top.rglob(MANIFEST)}
    for path in files:
        if path.match(f"*/{MANIFEST}"):
            found.skipped.append((path, "registry manifest"))
            continue
        root = next((r for r in manifests if path.is_relative_to(r)), None)
        if root is not None:
            recipe_dirs, other_dirs = manifests[root]
            hit = _within(path, recipe_dirs)
            if hit is not None:
                found.recipes.append((path, recipe_dirs[hit]))
                continue
            role = other_dirs.get(_within(path, other_dirs) or Path("/nonexistent"), "")
            why = "benchmark profile" if role == "benchmarks" else "outside the manifest's recipe directories"
            found.skipped.append((path, why if role else f"{why}; {_looks_like_recipe(path) or 'looks like a recipe'}"))
            continue
        if "recipes" in path.relative_to(top).parts[:-1]:
            found.recipes.append((path, None))
            continue
        reason = _looks_like_recipe(path)
        if reason is None:
            found.recipes.append((path, None))
        else:
            found.skipped.append((path, reason))
    return found


def check_recipe(path: Path, registry: str | None, runtimes: RuntimeLookup) -> Result:
    started = time.perf_counter()
    source = RecipeSource(name=path.stem, kind="file", trusted=True, path=path, registry=registry)
    try:
        recipe = load_recipe(path, source, strict=False)
    except SparkrunError as exc:
        return Result(path, failed_report(str(path), exc), time.perf_counter() - started)
    report = validate_recipe(recipe, runtimes)
    result = Result(path, report, 0.0)
    if not report.count("error"):
        try:
            result.rendered = len(describe(recipe, runtimes, cli_values={}, options=()).ranks)
        except SparkrunError as exc:
            result.render_error = exc.message
    result.seconds = time.perf_counter() - started
    return result


def summarize(top: Path, found: Survey, results: list[Result]) -> dict[str, Any]:
    by_code: Counter[str] = Counter()
    for result in results:
        by_code.update(f"{i.severity} {i.code}" for i in result.report.issues)
    failed = [r for r in results if (r.errors and not r.excused) or r.render_error]
    return {
        "dir": str(top),
        "recipes": len(results),
        "skipped": [{"file": str(p.relative_to(top)), "why": why} for p, why in found.skipped],
        "valid": sum(1 for r in results if not r.errors),
        "rendered": sum(1 for r in results if r.rendered),
        "excused": [{"file": str(r.path.relative_to(top)), "errors": r.errors} for r in results if r.excused],
        "failed": [{"file": str(r.path.relative_to(top)), "errors": r.errors or [r.render_error]} for r in failed],
        "issues_by_kind": dict(sorted(by_code.items())),
        "older_tool_accepts": sum(1 for r in results if r.report.older_tool_accepts),
        "verdict_differs_from_older_tool": [
            {
                "file": str(r.path.relative_to(top)),
                "ours": "valid" if not r.errors else "invalid",
                "older_tool": "accepts" if r.report.older_tool_accepts else "refuses",
            }
            for r in results
            if (not r.errors) != r.report.older_tool_accepts
        ],
        "median_ms": round(statistics.median(r.seconds for r in results) * 1000, 2) if results else 0.0,
    }


def print_summary(summary: dict[str, Any]) -> None:
    out = sys.stdout.write
    for skip in summary["skipped"]:
        out(f"skip  {skip['file']}: {skip['why']}\n")
    out(
        f"\nrecipes: {summary['recipes']}  valid: {summary['valid']}  rendered: {summary['rendered']}  "
        f"median time per recipe: {summary['median_ms']} ms (load + validate + render)\n"
    )
    out("issues by kind:\n")
    for kind, count in summary["issues_by_kind"].items():
        out(f"  {count:4d}  {kind}\n")
    out(f"older sparkrun (0.4.2) would accept: {summary['older_tool_accepts']} (from its known rules)\n")
    for item in summary["verdict_differs_from_older_tool"]:
        out(f"differs  {item['file']}: ours {item['ours']}, the older tool {item['older_tool']}\n")
    for item in summary["excused"]:
        out(f"excused  {item['file']}: {'; '.join(item['errors'])}\n")
    for item in summary["failed"]:
        out(f"FAILED   {item['file']}: {'; '.join(str(e) for e in item['errors'])}\n")
    out("result: " + ("FAIL" if summary["failed"] else "ok") + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sparkrun.recipes.corpus", description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        parser.error(f"{args.dir}: not a directory")
    runtimes = load_runtimes()
    found = survey(args.dir)
    results = [check_recipe(path, registry, runtimes) for path, registry in found.recipes]
    summary = summarize(args.dir, found, results)
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    else:
        print_summary(summary)
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
