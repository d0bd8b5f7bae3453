"""`sparkrun recipe list|search|show|validate` and the top-level aliases `list`, `search`, `show`.

Parses options, calls `sparkrun.recipes`, prints through the console. Heavy modules are imported inside the commands
so that `sparkrun recipe --help` stays fast.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from sparkrun.cli.completion import complete_recipe
from sparkrun.cli.context import AppContext, pass_app
from sparkrun.cli.options import serve_value_options
from sparkrun.cli.vram import show_vram, vram
from sparkrun.errors import SparkrunError
from sparkrun.secrets import masked

if TYPE_CHECKING:
    from sparkrun.recipes.catalog import Entry
    from sparkrun.recipes.lookup import Resolver
    from sparkrun.recipes.model import Issue
    from sparkrun.recipes.show import ShowData
    from sparkrun.recipes.validate import Report


def _resolver(app: AppContext) -> Resolver:
    from sparkrun.recipes.lookup import Resolver  # deferred: loading recipes pulls in PyYAML and the registries

    return Resolver(notify=lambda message: app.console.info(f"note: {message}"))


# ---- list / search -----------------------------------------------------------------------------------------------
def _print_entries(app: AppContext, entries: list[Entry], as_json: bool) -> None:
    if as_json:
        app.console.json([e.to_json() for e in entries])
        return
    if not entries:
        app.console.info("no recipes found")
        return
    rows = [
        (e.ref, e.runtime or "?", e.nodes, e.model, e.description if not e.error else f"(error) {e.error}")
        for e in entries
    ]
    app.console.table(["RECIPE", "RUNTIME", "NODES", "MODEL", "DESCRIPTION"], rows)


def _list(app: AppContext, query: str | None, registry: str | None, runtime: str | None, all_: bool, js: bool) -> None:
    from sparkrun.recipes.catalog import catalog, matches  # deferred: reads every recipe (PyYAML)

    entries, notes = catalog(_resolver(app), registry=registry, include_hidden=all_ or bool(query))
    for note in notes:
        app.console.info(f"note: {note}")
    _print_entries(app, [e for e in entries if matches(e, query, runtime)], js)


_registry_opt = click.option("--registry", help="Only recipes from this registry (`builtin` for the bundled ones).")
_runtime_opt = click.option("--runtime", help="Only recipes for this runtime (vllm matches vllm-ray, …).")
_all_opt = click.option("-a", "--all", "all_", is_flag=True, help="Include hidden registries.")
_json_opt = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.command("list")
@click.argument("query", required=False)
@_registry_opt
@_runtime_opt
@_all_opt
@_json_opt
@pass_app
def list_cmd(
    app: AppContext, query: str | None, registry: str | None, runtime: str | None, all_: bool, as_json: bool
) -> None:
    """List recipes: ./recipes/, downloaded registries, bundled recipes."""
    _list(app, query, registry, runtime, all_, as_json)


@click.command("search")
@click.argument("query")
@_registry_opt
@_runtime_opt
@_all_opt
@_json_opt
@pass_app
def search_cmd(
    app: AppContext, query: str, registry: str | None, runtime: str | None, all_: bool, as_json: bool
) -> None:
    """Search recipes by name, model, runtime or description (all words must match)."""
    _list(app, query, registry, runtime, True, as_json)


# ---- show --------------------------------------------------------------------------------------------------------
def _print_show(app: AppContext, data: ShowData) -> None:
    recipe, src, out = data.recipe, data.recipe.source, app.console.out
    origin = f"@{src.registry}" if src.kind == "registry" else src.kind
    out(f"Recipe:       {src.name}  ({origin}, {'trusted' if src.trusted else 'untrusted'})")
    out(f"Source:       {src.display}")
    if recipe.description:
        out(f"Description:  {' '.join(recipe.description.split())}")
    out(f"Model:        {recipe.model}" + (f" @ {recipe.model_revision}" if recipe.model_revision else ""))
    out(f"Runtime:      {data.runtime}")
    out(f"Image:        {data.image}")
    out(f"Nodes:        {data.nodes}  (recipe range {recipe.min_nodes or 1}-{recipe.max_nodes or 'any'})")
    out("")
    rows = [(k, _show_value(v), data.settings.origin(k) or "") for k, v in sorted(data.settings.items())]
    app.console.table(["SETTING", "VALUE", "FROM"], rows, title="Settings (CLI > overrides > recipe > runtime)")
    if data.settings.env:
        out("\nEnvironment:")
        for name, value in sorted(masked(data.settings.env).items()):
            out(f"  {name}={value}")
    for rank in data.ranks:
        out(f"\nServe command (rank {rank.rank}, {rank.role}):")
        out("  " + rank.command_line.replace("\n", "\n  "))
    if data.gated:
        out("\nNeeds --trust (untrusted source):")
        for item in data.gated:
            out(f"  - {item.line()}")
    for warning in data.warnings:
        app.console.warn(warning.line())
    for mod in data.missing_mods:
        app.console.warn(f"{mod.message} (a run stops here; hint: {mod.hint})")


def _show_value(value: Any) -> str:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, dict | list) else str(value)


@click.command("show")
@click.argument("recipe_name", shell_complete=complete_recipe)
@serve_value_options
@click.option("--nodes", type=click.IntRange(min=1), help="Preview for this many hosts (default: from parallelism).")
@click.option("--no-vram", is_flag=True, help="Skip the memory estimate.")
@_json_opt
@pass_app
def show_cmd(
    app: AppContext,
    /,
    recipe_name: str,
    image: str | None,
    nodes: int | None,
    options: tuple[str, ...],
    no_vram: bool,
    as_json: bool,
    **cli_values: Any,
) -> None:
    """Show a recipe's resolved values, where each came from, and the serve command of every rank."""
    from sparkrun.recipes.show import describe  # deferred: runtime plugins and the value chain (vpd)

    resolver = _resolver(app)
    recipe = resolver.load(recipe_name)
    data = describe(
        recipe, app.runtimes, cli_values=cli_values, options=options, image=image, nodes=nodes, mods=resolver.mod_dirs
    )
    check = None if no_vram else show_vram(app, recipe_name, {**cli_values, "image": image, "options": options})
    if as_json:
        app.console.json({**data.to_json(), "vram": check.to_json() if check else None})
    else:
        _print_show(app, data)
        app.console.out("\n" + check.text() if check else "")


# ---- validate ----------------------------------------------------------------------------------------------------
def _older_tool_note(issue: Issue) -> str:
    from sparkrun.recipes.compat import older_tool_accepts  # deferred: only validate prints it

    accepts = older_tool_accepts(issue)
    if issue.severity == "error" and accepts:
        return "; the older sparkrun accepts this"
    if issue.severity != "error" and not accepts:
        return "; the older sparkrun refuses this"
    return ""


def _print_report(app: AppContext, report: Report) -> None:
    for issue in report.issues:
        app.console.out(f"{issue.line()}  [{issue.severity} {issue.code}{_older_tool_note(issue)}]")
        if issue.hint:
            app.console.out(f"  hint: {issue.hint}")
    counts = ", ".join(
        f"{report.count(s)} {s}{'s' if report.count(s) != 1 else ''}" for s in ("error", "warning", "suggestion")
    )
    verdict = "valid" if not report.count("error") else "invalid"
    app.console.out(f"{report.ref}: {verdict} ({counts})")


@click.command("validate")
@click.argument("recipe_name", shell_complete=complete_recipe)
@click.option("--strict", is_flag=True, help="Warnings fail too (exit 8).")
@click.option("--fail-on", type=click.Choice(["error", "warning", "suggestion", "none"]), hidden=True)
@_json_opt
@pass_app
def validate_cmd(app: AppContext, recipe_name: str, strict: bool, fail_on: str | None, as_json: bool) -> None:
    """Check a recipe: errors (exit 3), warnings (exit 8 with --strict), suggestions."""
    from sparkrun.recipes.validate import failed_report, validate_recipe  # deferred: runtime plugins, vpd, PyYAML

    resolver = _resolver(app)
    try:
        recipe = resolver.load(recipe_name, strict=False)
    except SparkrunError as exc:
        report = failed_report(recipe_name, exc)
    else:
        report = validate_recipe(recipe, app.runtimes, mods=resolver.mod_dirs)
    if as_json:
        app.console.json(report.to_json())
    else:
        _print_report(app, report)
    code = report.exit_code(strict, fail_on)
    if code:
        raise click.exceptions.Exit(int(code))


@click.group("recipe")
def recipe() -> None:
    """Recipes: list, search, show, validate."""


for _command in (list_cmd, search_cmd, show_cmd, validate_cmd, vram):
    recipe.add_command(_command)
