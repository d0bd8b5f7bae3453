"""Shell completion (bash, zsh, fish): Click's own machinery, plus recipe and cluster names.

Enable with `eval "$(_SPARKRUN_COMPLETE=bash_source sparkrun)"` (zsh_source, fish_source likewise). Candidates come
from files only, never the network and never YAML parsing, so a TAB stays fast: bundled recipes, `./recipes/`, the
clones of registries already downloaded, and the cluster files.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
from click.shell_completion import CompletionItem

from sparkrun.config import cache_dir, config_dir

COMPLETE_VAR = "_SPARKRUN_COMPLETE"
_SUFFIXES = (".yaml", ".yml")


def _stems(root: Path, skip_hidden: bool = True) -> set[str]:
    found: set[str] = set()
    if not root.is_dir():
        return found
    for _dirpath, dirnames, filenames in os.walk(root):
        if skip_hidden:
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found.update(f.rsplit(".", 1)[0] for f in filenames if f.endswith(_SUFFIXES))
    return found


def _bundled() -> Path:
    package = Path(__file__).resolve().parent.parent
    wheel = package / "bundled_recipes"
    return wheel if wheel.is_dir() else package.parent.parent / "recipes"


def recipe_names() -> set[str]:
    names = _stems(_bundled()) | _stems(Path.cwd() / "recipes") | _stems(cache_dir() / "registries")
    return names - {"registry", "README"}


def complete_recipe(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    if incomplete.startswith((".", "/", "~")):
        return [CompletionItem(incomplete, type="file")]
    return [CompletionItem(n) for n in sorted(recipe_names()) if n.startswith(incomplete)]


def complete_cluster(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    d = config_dir() / "clusters"
    names = sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]
