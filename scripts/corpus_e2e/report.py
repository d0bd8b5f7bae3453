"""The corpus run's table, as Markdown (stdout and build/corpus-e2e/report.md) and JSON (report.json)."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from corpus_e2e.classify import KNOWN_DEFECTS, REASONS, Verdict
from corpus_e2e.registries import CorpusRecipe


@dataclass(frozen=True)
class Row:
    recipe: CorpusRecipe
    verdict: Verdict
    seconds: float
    hosts: int | None = None  # hosts the job used (ready runs)
    unknown_flags: tuple[str, ...] = ()  # flags the stand-ins accepted with a warning


@dataclass(frozen=True)
class Context:
    hosts: int
    image: str
    startup_seconds: float
    timeout_s: float
    total_s: float  # with the cluster: bring-up, every recipe, the final check
    unlisted: tuple[str, ...] = ()


def column(verdict: Verdict) -> str:
    return verdict.reason if verdict.status == "expected" and verdict.reason else verdict.status


COLUMNS = ("ready", *(r.code for r in REASONS), "unexpected")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _counts_table(rows: Sequence[Row]) -> list[str]:
    titles = ["ready", *(r.title for r in REASONS), "unexpected"]
    out = [
        "| registry | repository | recipes | " + " | ".join(titles) + " |",
        "|---|---|--:|" + "--:|" * len(titles),
    ]
    registries = sorted({(r.recipe.registry, r.recipe.repository) for r in rows})
    for registry, repository in [*registries, ("**total**", "")]:
        mine = [r for r in rows if registry in ("**total**", r.recipe.registry)]
        counts = Counter(column(r.verdict) for r in mine)
        cells = [str(counts.get(c, 0)) for c in COLUMNS]
        out.append(f"| {registry} | {repository} | {len(mine)} | " + " | ".join(cells) + " |")
    return out


def _recipe_table(rows: Sequence[Row]) -> list[str]:
    out = ["| recipe | runtime | nodes | result | seconds | detail |", "|---|---|---|---|--:|---|"]
    for row in sorted(rows, key=lambda r: r.recipe.ref):
        result = column(row.verdict) if row.verdict.status != "unexpected" else "**UNEXPECTED**"
        nodes = f"{row.recipe.nodes} (used {row.hosts})" if row.hosts else row.recipe.nodes
        out.append(
            f"| `{row.recipe.ref}` | {row.recipe.runtime} | {nodes} | {result} | {row.seconds:.1f} | "
            f"{_cell(row.verdict.what or row.verdict.line)} |"
        )
    return out


def _unexpected(rows: Sequence[Row], unlisted: Sequence[str]) -> list[str]:
    bad = [r for r in rows if r.verdict.status == "unexpected"]
    if not bad and not unlisted:
        return ["None."]
    out: list[str] = []
    for row in sorted(bad, key=lambda r: r.recipe.ref):
        out.append(f"- `{row.recipe.ref}` ({row.recipe.repository}/{row.recipe.relpath}): {row.verdict.line}")
        out += [f"    - {_cell(d)}" for d in row.verdict.details]
    out += [f"- `{path}`: in the corpus, but `sparkrun list` does not list it" for path in unlisted]
    return out


def _unknown_flags(rows: Sequence[Row]) -> list[str]:
    listed = [r for r in sorted(rows, key=lambda r: r.recipe.ref) if r.unknown_flags]
    if not listed:
        return ["None."]
    return [f"- `{r.recipe.ref}`: " + ", ".join(f"`{f}`" for f in r.unknown_flags) for r in listed]


def markdown(rows: Sequence[Row], ctx: Context) -> str:
    seconds = [r.seconds for r in rows] or [0.0]
    repos = len({r.recipe.repository for r in rows})
    regs = len({r.recipe.registry for r in rows})
    head = [
        "# Corpus end-to-end run",
        "",
        f"{len(rows)} recipes from {repos} repositories ({regs} registries) run for real on {ctx.hosts} test hosts "
        f"with `--image {ctx.image}` (`STANDIN_STARTUP_SECONDS={ctx.startup_seconds:g}`, cap {ctx.timeout_s:g} s "
        f"per recipe): {ctx.total_s:.0f} s with the cluster (up, runs, checks); per recipe median "
        f"{statistics.median(seconds):.1f} s, max {max(seconds):.1f} s.",
        "",
        *_counts_table(rows),
        "",
        "## Unexpected",
        "",
        *_unexpected(rows, ctx.unlisted),
        "",
        "## Recipes",
        "",
        *_recipe_table(rows),
        "",
        "## Flags the stand-ins did not know",
        "",
        "Accepted with a warning, as the engine release a recipe's image ships may have them (the stand-ins parse "
        "the flag lists of one release; sparkrun's own flags are checked strictly by its unit tests):",
        "",
        *_unknown_flags(rows),
        "",
        "## Expected reasons",
        "",
        *[f"- `{r.code}` ({r.title}): {r.why}" for r in REASONS],
        "",
        "Known recipe defects (`recipe-defect`):",
        "",
        *[f"- `{key}`: {d.why}" for key, d in sorted(KNOWN_DEFECTS.items())],
    ]
    return "\n".join(head) + "\n"


def as_json(rows: Sequence[Row], ctx: Context) -> dict[str, Any]:
    return {
        "hosts": ctx.hosts,
        "image": ctx.image,
        "startup_seconds": ctx.startup_seconds,
        "timeout_s": ctx.timeout_s,
        "total_s": round(ctx.total_s, 1),
        "counts": dict(Counter(column(r.verdict) for r in rows)),
        "unlisted": list(ctx.unlisted),
        "recipes": [
            {
                "ref": r.recipe.ref,
                "registry": r.recipe.registry,
                "repository": r.recipe.repository,
                "path": r.recipe.relpath,
                "runtime": r.recipe.runtime,
                "nodes": r.recipe.nodes,
                "hosts_used": r.hosts,
                "unknown_flags": list(r.unknown_flags),
                "status": r.verdict.status,
                "reason": r.verdict.reason,
                "line": r.verdict.line,
                "details": list(r.verdict.details),
                "seconds": round(r.seconds, 2),
            }
            for r in sorted(rows, key=lambda r: r.recipe.ref)
        ],
    }
