"""`sparkrun registry add|remove|update|list|show|enable|disable|trust|untrust`.

Only `add` and `update` reach the network (git). Registries start untrusted; `trust NAME` lets their recipes run
hooks and isolation-breaking settings without `--trust` (until the registry's URL changes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from sparkrun.cli.context import AppContext, pass_app

if TYPE_CHECKING:
    from sparkrun.recipes.registry import Registry, RegistryStore


def _store() -> RegistryStore:
    from sparkrun.recipes.registry import RegistryStore

    return RegistryStore.load()


def _recipe_count(reg: Registry) -> str:
    from sparkrun.recipes.registry import recipe_files

    return str(len(recipe_files(reg))) if reg.cloned else "-"


@click.group("registry")
def registry() -> None:
    """Recipe registries (git repositories): add, remove, update, list, trust."""


@registry.command("add")
@click.argument("url")
@click.option("--name", help="Name for a repository without a manifest (or pick one registry of a manifest).")
@click.option("--trust", is_flag=True, help="Trust it: its recipes may run hooks without --trust.")
@click.option("--no-update", is_flag=True, help="Only record it; download on the next `registry update`.")
@pass_app
def add_cmd(app: AppContext, url: str, name: str | None, trust: bool, no_update: bool) -> None:
    """Add the registries of a git repository (reads its .sparkrun/registry.yaml)."""
    from sparkrun.recipes import registry as reg

    added = reg.add(_store(), url, name=name, trust=trust, fetch=not no_update)
    for entry in added:
        state = "trusted" if entry.is_trusted else "untrusted"
        commit = f" at {entry.commit[:10]}" if entry.commit else " (not downloaded)"
        app.console.info(f"added registry {entry.name} ({state}){commit}: {entry.url}")


@registry.command("remove")
@click.argument("name")
@pass_app
def remove_cmd(app: AppContext, name: str) -> None:
    """Remove a registry (and its clone when no other registry uses it)."""
    from sparkrun.recipes import registry as reg

    removed = reg.remove(_store(), name)
    app.console.info(f"removed registry {removed.name}")


@registry.command("update")
@click.argument("name", required=False)
@pass_app
def update_cmd(app: AppContext, name: str | None) -> None:
    """Download or update registries (all enabled ones, or NAME)."""
    from sparkrun.errors import PartialFailure
    from sparkrun.recipes import registry as reg

    results = reg.update(_store(), [name] if name else None, app.console.warn)
    for entry, outcome in results:
        app.console.info(f"{entry.name}: {outcome}")
    failed = [entry.name for entry, outcome in results if outcome == "failed"]
    if failed:
        raise PartialFailure(f"could not download registr{'ies' if len(failed) > 1 else 'y'} {', '.join(failed)}",
                             hint="check the network and the URLs (sparkrun registry list)")  # fmt: skip


@registry.command("list")
@click.option("--show-disabled", is_flag=True, help="Include disabled registries.")
@click.option("--only-show-visible", is_flag=True, help="Hide registries marked not visible.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def list_cmd(app: AppContext, show_disabled: bool, only_show_visible: bool, as_json: bool) -> None:
    """List configured registries."""
    shown = [r for r in _store() if (r.enabled or show_disabled or as_json) and (r.visible or not only_show_visible)]
    if as_json:
        app.console.json([r.to_json() for r in shown])
        return
    rows = [(r.name, "yes" if r.enabled else "no", "yes" if r.visible else "no", "yes" if r.is_trusted else "no",
             (r.commit or "-")[:10], _recipe_count(r), r.url) for r in shown]  # fmt: skip
    app.console.table(["NAME", "ENABLED", "VISIBLE", "TRUSTED", "COMMIT", "RECIPES", "URL"], rows)


@registry.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def show_cmd(app: AppContext, name: str, as_json: bool) -> None:
    """Show one registry: URL, paths, trust, pinned commit."""
    reg = _store().get(name)
    if as_json:
        app.console.json(reg.to_json())
        return
    for key, value in reg.to_json().items():
        app.console.out(f"{key + ':':<13} {'' if value is None else value}")
    app.console.out(f"{'recipes:':<13} {_recipe_count(reg)} files")


def _flag_command(command: str, doc: str, **change: bool) -> click.Command:
    @click.argument("name")
    @pass_app
    def flag(app: AppContext, name: str) -> None:
        from sparkrun.recipes import registry as reg

        updated = reg.set_flag(_store(), name, **change)
        app.console.info(f"registry {updated.name}: {command.removesuffix('e')}ed")

    flag.__doc__ = doc
    return registry.command(command)(flag)


enable_cmd = _flag_command("enable", "Enable a registry (its recipes are found by name).", enabled=True)
disable_cmd = _flag_command("disable", "Disable a registry (kept, but not searched).", enabled=False)
trust_cmd = _flag_command("trust", "Trust a registry: its recipes may run hooks without --trust.", trusted=True)
untrust_cmd = _flag_command("untrust", "Stop trusting a registry.", trusted=False)


@registry.command("revert-to-defaults", hidden=True)
@pass_app
def revert_cmd(app: AppContext) -> None:
    """Forget configured registries and go back to the shipped defaults (clones are kept)."""
    from sparkrun.recipes.registry import revert_to_defaults

    revert_to_defaults()
    app.console.info("registries reset to the shipped defaults")
