"""The git client for recipe registries: the only module of `recipes/` that starts processes.

Every call runs the system `git` with no terminal prompts (`GIT_TERMINAL_PROMPT=0`), a timeout, and captured output,
so a failure becomes one short cause (git's last `fatal:` line) instead of a wall of text.
Clones are shallow and sparse (cone mode: only the registry's recipe/mods/tuning/benchmark directories and
`.sparkrun/`), made in a temporary directory and renamed into place, so an interrupted clone leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

GIT_TIMEOUT_S = 300


class GitFailed(Exception):
    """A git command failed; `cause` is one line."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="", SSH_ASKPASS="", LC_ALL="C", GIT_CONFIG_NOSYSTEM="1")
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    return env


def _short_cause(stderr: str, returncode: int) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
    picked = (fatal or lines or [f"git exited with status {returncode}"])[-1]
    return picked.removeprefix("fatal: ").removeprefix("error: ")


def run_git(args: Sequence[str], *, cwd: Path | None = None, timeout: float = GIT_TIMEOUT_S) -> str:
    """Run `git ARGS`; returns stdout. Raises `GitFailed` with a one-line cause."""
    import subprocess  # deferred: resolving recipes from existing clones never starts git

    if shutil.which("git") is None:
        raise GitFailed("git is not installed (needed for recipe registries)")
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise GitFailed(f"git {args[0]} timed out after {timeout:.0f}s") from exc
    except OSError as exc:
        raise GitFailed(f"cannot run git: {exc.strerror}") from exc
    if done.returncode != 0:
        raise GitFailed(_short_cause(done.stderr, done.returncode))
    return done.stdout


def head_commit(repo: Path) -> str:
    return run_git(["rev-parse", "HEAD"], cwd=repo).strip()


def tree_has_dir(repo: Path, path: str) -> bool:
    """Whether the checked-out commit has directory `path` (sparse checkouts do not show it on disk)."""
    return bool(run_git(["ls-tree", "-d", "--name-only", "HEAD", path], cwd=repo).strip())


def set_sparse_paths(repo: Path, paths: Sequence[str]) -> None:
    """Check out only `paths` (directories, cone mode); an empty or root path means the whole tree."""
    cleaned = sorted({p.strip("/") for p in paths})
    if not cleaned or "" in cleaned or "." in cleaned:
        run_git(["sparse-checkout", "disable"], cwd=repo)
        return
    run_git(["sparse-checkout", "set", "--cone", *cleaned], cwd=repo)


def sparse_clone(url: str, dest: Path, paths: Sequence[str]) -> str:
    """Shallow, sparse clone of `url` into `dest` (replaced atomically). Returns the checked-out commit."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        run_git(["clone", "--quiet", "--depth", "1", "--filter=blob:none", "--no-checkout", url, str(tmp / "repo")])
        repo = tmp / "repo"
        set_sparse_paths(repo, paths)
        run_git(["checkout", "--quiet"], cwd=repo)
        commit = head_commit(repo)
        if dest.exists():
            shutil.rmtree(dest)
        repo.rename(dest)
        return commit
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch_latest(repo: Path) -> str:
    """Move a clone to the remote's current default-branch head. Returns the new commit."""
    run_git(["fetch", "--quiet", "--depth", "1", "origin", "HEAD"], cwd=repo)
    run_git(["reset", "--quiet", "--hard", "FETCH_HEAD"], cwd=repo)
    return head_commit(repo)


def remove_clone(repo: Path) -> None:
    shutil.rmtree(repo, ignore_errors=True)
