"""YAML file → `Recipe`: parse with a line index, migrate v1, apply `include:`, then type the fields (`fields.py`).

`load_recipe(..., strict=True)` (what `run` uses) raises the first error as a one-line `RecipeError` naming the file,
line and key path. `strict=False` (what `recipe validate` uses) keeps going and records every problem in
`Recipe.issues`; only a file that cannot be read or parsed at all still raises.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from sparkrun.errors import RecipeError
from sparkrun.recipes.document import Document, merge_documents, parse_document
from sparkrun.recipes.fields import build_recipe
from sparkrun.recipes.migrate import migrate
from sparkrun.recipes.model import Issue, Recipe, RecipeSource

MAX_INCLUDE_DEPTH = 8
RECIPE_SUFFIXES = (".yaml", ".yml")


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
