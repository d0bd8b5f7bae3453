"""The corpus as sparkrun users have it: each repository of the corpus directory becomes a local git repository
(`file://`), added with `sparkrun registry add URL --trust`, and its recipes are found with `sparkrun list --all`.

The corpus directory holds one directory per public repository (read-only snapshots, no `.git`); a bare repository
with one commit of each snapshot is made under the run's work directory, without copying the files twice. Shipped
default registries whose names a corpus manifest declares (spark-arena's `official`, `experimental`) are removed
first; the others (`eugr`, `community`) stay configured and not downloaded, as on a fresh install.
Every recipe file the offline corpus check finds (`sparkrun.recipes.corpus.survey`) must be listed by sparkrun;
one that is not is reported as unexpected.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparkrun.recipes.corpus import survey
from sparkrun.recipes.registry import MANIFEST, parse_manifest


class SetupError(Exception):
    """The corpus could not be registered (one line)."""


@dataclass(frozen=True)
class CorpusRecipe:
    ref: str  # what `sparkrun run` is given: @registry/name (or @registry/sub/dir/name)
    registry: str
    repository: str  # the corpus directory it came from (owner+repo)
    relpath: str  # path inside the repository
    runtime: str
    nodes: str  # the recipe's node range as `sparkrun list` shows it


def sparkrun(env: Mapping[str, str], cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sparkrun", *args],
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=cwd,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _ok(env: Mapping[str, str], cwd: Path, *args: str) -> str:
    r = sparkrun(env, cwd, *args)
    if r.returncode != 0:
        raise SetupError(f"sparkrun {' '.join(args)} -> exit {r.returncode}: {r.stderr.strip()[-600:]}")
    return r.stdout


def _git(env: Mapping[str, str], *args: str) -> None:
    ident = ["-c", "user.name=corpus-e2e", "-c", "user.email=corpus-e2e@localhost", "-c", "init.defaultBranch=main"]
    r = subprocess.run(["git", *ident, *args], capture_output=True, text=True, env=dict(env), timeout=120, check=False)
    if r.returncode != 0:
        raise SetupError(f"git {' '.join(args)} -> exit {r.returncode}: {r.stderr.strip()[-600:]}")


def snapshot_repository(source: Path, dest: Path, env: Mapping[str, str]) -> Path:
    """A bare git repository at `dest` whose one commit is the tree of `source`."""
    _git(env, "init", "-q", "--bare", str(dest))
    tree = ["--git-dir", str(dest), "--work-tree", str(source)]
    _git(env, *tree, "add", "-A", ".")
    _git(env, *tree, "commit", "-q", "-m", f"snapshot of {source.name}")
    return dest


def _declared_names(repo: Path) -> list[str]:
    if not (repo / MANIFEST).is_file():
        return []
    return [r.name for r in parse_manifest(repo, "") or []]


def repositories(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.iterdir() if p.is_dir() and not p.name.startswith("."))


def _name_for(repo: Path) -> str:
    """A name for a repository without a manifest: its owner (`owner+repo` directories)."""
    return repo.name.split("+", 1)[0]


def register(corpus: Path, work: Path, env: Mapping[str, str]) -> dict[str, str]:
    """Add every repository of `corpus` as trusted registries; {registry name: repository directory name}."""
    configured = {r["name"] for r in json.loads(_ok(env, work, "registry", "list", "--json"))}
    names: dict[str, str] = {}
    for repo in repositories(corpus):
        declared = _declared_names(repo)
        for clash in sorted(set(declared) & configured):
            _ok(env, work, "registry", "remove", clash)
        bare = snapshot_repository(repo, work / "git" / f"{repo.name}.git", env)
        named = [] if declared else ["--name", _name_for(repo)]
        _ok(env, work, "registry", "add", f"file://{bare}", "--trust", *named)
        names.update({n: repo.name for n in (declared or [_name_for(repo)])})
    return names


def _relpath(entry: Mapping[str, Any], regs: Mapping[str, Mapping[str, Any]]) -> str:
    reg = regs[entry["origin"].lstrip("@")]
    inside = Path(entry["path"]).relative_to(reg["path"])
    return str(Path(reg["recipes"] or ".") / inside)


def corpus_recipes(env: Mapping[str, str], work: Path, names: Mapping[str, str]) -> list[CorpusRecipe]:
    """The recipes of the corpus registries, as `sparkrun list --all --json` lists them."""
    regs = {r["name"]: r for r in json.loads(_ok(env, work, "registry", "list", "--json"))}
    found: list[CorpusRecipe] = []
    for entry in json.loads(_ok(env, work, "list", "--all", "--json")):
        registry = str(entry.get("origin") or "").lstrip("@")
        if registry not in names:
            continue
        found.append(
            CorpusRecipe(
                ref=entry["ref"],
                registry=registry,
                repository=names[registry],
                relpath=_relpath(entry, regs),
                runtime=str(entry.get("runtime") or "?"),
                nodes=str(entry.get("nodes") or "?"),
            )
        )
    return found


def unlisted(corpus: Path, listed: Sequence[CorpusRecipe]) -> list[str]:
    """Recipe files of the corpus (as the offline corpus check finds them) that `sparkrun list` did not list."""
    seen = {(r.repository, r.relpath) for r in listed}
    missing: list[str] = []
    for path, _registry in survey(corpus).recipes:
        rel = path.relative_to(corpus)
        key = (rel.parts[0], str(Path(*rel.parts[1:])))
        if key not in seen:
            missing.append(str(rel))
    return missing


def control_dir() -> Path:
    """SSH ControlMaster sockets of this run (short: a Unix socket path holds at most 107 bytes)."""
    return Path("/tmp") / f"sr-corpus-{os.getpid()}"


def isolated_env(work: Path, state_dir: Path) -> dict[str, str]:
    """Environment for sparkrun and git: a HOME, config and cache of this run's own; no network for git."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARKRUN_", "XDG_", "HF_", "HUGGING_FACE_"))}
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    control = control_dir()
    env.update(
        HOME=str(home),
        SPARKRUN_CONFIG_DIR=str(work / "config"),
        SPARKRUN_CACHE_DIR=str(work / "cache"),
        SPARKRUN_SSH_CONTROL_DIR=str(control),
        HF_HUB_OFFLINE="1",
        GIT_TERMINAL_PROMPT="0",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_ALLOW_PROTOCOL="file",  # the corpus registries are local; nothing may reach GitHub
        TB_STATE=str(state_dir),
    )
    return env
