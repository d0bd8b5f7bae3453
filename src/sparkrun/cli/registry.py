"""`sparkrun registry add|remove|update|list|show|enable|disable|trust|untrust`.

Only `add` and `update` reach the network (git). Registries start untrusted; `trust NAME` lets their recipes run
hooks and isolation-breaking settings without `--trust` (until the registry's URL changes).
"""

from __future__ import annotations

import click

from sparkrun.cli.context import AppContext, pass_app
from sparkrun.errors import PartialFailure
from sparkrun.recipes import registry as registries
from sparkrun.recipes.registry import Registry, RegistryStore, recipe_files, revert_to_defaults


def _store() -> RegistryStore:
    return RegistryStore.load()


def _recipe_count(reg: Registry) -> str:
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
    added = registries.add(_store(), url, name=name, trust=trust, fetch=not no_update)
    for entry in added:
        state = "trusted" if entry.is_trusted else "untrusted"
        commit = f" at {entry.commit[:10]}" if entry.commit else " (not downloaded)"
        app.console.info(f"added registry {entry.name} ({state}){commit}: {entry.url}")


@registry.command("remove")
@click.argument("name")
@pass_app
def remove_cmd(app: AppContext, name: str) -> None:
    """Remove a registry (and its clone when no other registry uses it)."""
    removed = registries.remove(_store(), name)
    app.console.info(f"removed registry {removed.name}")


@registry.command("update")
@click.argument("name", required=False)
@pass_app
def update_cmd(app: AppContext, name: str | None) -> None:
    """Download or update registries (all enabled ones, or NAME)."""
    results = registries.update(_store(), [name] if name else None, app.console.warn)
    for entry, outcome in results:
        app.console.info(f"{entry.name}: {outcome}")
    failed = [entry.name for entry, outcome in results if outcome == "failed"]
    if failed:
        plural = "ies" if len(failed) > 1 else "y"
        raise PartialFailure(
            f"could not download registr{plural} {', '.join(failed)}",
            hint="check the network and the URLs (sparkrun registry list)",
        )


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
    rows = [_row(r) for r in shown]
    app.console.table(["NAME", "ENABLED", "VISIBLE", "TRUSTED", "COMMIT", "RECIPES", "URL"], rows)


def _row(r: Registry) -> tuple[str, ...]:
    flags = ("yes" if flag else "no" for flag in (r.enabled, r.visible, r.is_trusted))
    return (r.name, *flags, (r.commit or "-")[:10], _recipe_count(r), r.url)


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
        updated = registries.set_flag(_store(), name, **change)
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
    revert_to_defaults()
    app.console.info("registries reset to the shipped defaults")
