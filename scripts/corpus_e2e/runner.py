"""One corpus recipe, for real: `sparkrun run REF --cluster testbed --image STANDIN --no-follow --json`, capped by a
wall clock; a job that became ready is stopped with `sparkrun stop JOB`; then each host's dockerd is asked whether
any sparkrun container is left (the cleanup guarantee after a failure, `stop` after success)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from corpus_e2e.classify import KNOWN_DEFECTS, RunRecord, parse_error
from corpus_e2e.cluster import Cluster
from corpus_e2e.registries import CorpusRecipe, sparkrun

CLUSTER_NAME = "testbed"
GRACE_S = 60  # after the cap: SIGTERM (sparkrun removes what it started, like Ctrl-C), then SIGKILL


@dataclass(frozen=True)
class RunSettings:
    image: str
    startup_seconds: float
    timeout_s: float


def run_argv(recipe: CorpusRecipe, settings: RunSettings) -> list[str]:
    return [
        sys.executable,
        "-m",
        "sparkrun",
        "run",
        recipe.ref,
        "--cluster",
        CLUSTER_NAME,
        "--image",
        settings.image,
        "--no-follow",
        "--json",
        "-e",
        f"STANDIN_STARTUP_SECONDS={settings.startup_seconds:g}",
    ]


def _capped(argv: list[str], env: Mapping[str, str], cwd: Path, cap: float) -> tuple[int | None, str, str]:
    """(exit status or None when the cap ended it, stdout, stderr)."""
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=cap)
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
    except BaseException:  # Ctrl-C / SIGTERM of this program: let sparkrun remove what it started, then stop
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=GRACE_S)
        raise
    try:
        out, err = proc.communicate(timeout=GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    return None, out, err


def _job_id(stdout: str) -> str | None:
    try:
        data = json.loads(stdout)
    except json.JSONDecodeError:
        return None
    job = data.get("job") if isinstance(data, dict) else None
    return str(job) if job else None


def hosts_used(stdout: str) -> int | None:
    """How many hosts a started job used (run --json `hosts`)."""
    try:
        data = json.loads(stdout)
    except json.JSONDecodeError:
        return None
    hosts = data.get("hosts") if isinstance(data, dict) else None
    return len(hosts) if isinstance(hosts, list) else None


def hook_texts(recipe: CorpusRecipe, env: Mapping[str, str], cwd: Path) -> tuple[tuple[str, str], ...]:
    """(label, command) of the recipe's container hooks, from its dry-run plan (no connection)."""
    plan = sparkrun(env, cwd, "run", recipe.ref, "--dry-run", "--json", "--cluster", CLUSTER_NAME)
    try:
        data = json.loads(plan.stdout)
    except json.JSONDecodeError:
        return ()
    hooks = [h for rank in data.get("ranks") or [] for h in rank.get("pre_hooks") or []]
    hooks += data.get("post_exec") or []
    return tuple((str(h.get("label")), str(h.get("command"))) for h in hooks if isinstance(h, dict))


_UNKNOWN_FLAG = re.compile(r"unrecognized argument (--?[^\s:=]+)[^:]*: not in (.+?)'s flag list")


def unknown_flags(job: str, env: Mapping[str, str], cwd: Path) -> tuple[str, ...]:
    """Flags the stand-in engines accepted with a warning (not in their release's list), from every rank's log."""
    logs = sparkrun(env, cwd, "logs", job, "--all-sources", "-n", "all")
    found = {f"{m.group(1)} ({m.group(2)})" for m in _UNKNOWN_FLAG.finditer(logs.stdout + logs.stderr)}
    return tuple(sorted(found))


_HOOK_FAILED = re.compile(r"^error: \S+: (pre|post)_exec\[\d+\]: ", re.M)


def run_recipe(
    recipe: CorpusRecipe, settings: RunSettings, env: Mapping[str, str], cwd: Path, cluster: Cluster
) -> RunRecord:
    started = time.monotonic()
    code, out, err = _capped(run_argv(recipe, settings), env, cwd, settings.timeout_s)
    seconds = time.monotonic() - started
    stop_error = None
    job = _job_id(out) if code == 0 else None
    flags: tuple[str, ...] = ()
    if job is not None:
        flags = unknown_flags(job, env, cwd)
        stopped = sparkrun(env, cwd, "stop", job)
        if stopped.returncode != 0:
            failure = parse_error(stopped.stderr)
            stop_error = f"exit {stopped.returncode}: {failure.line if failure else stopped.stderr.strip()[-300:]}"
    hooks = hook_texts(recipe, env, cwd) if _HOOK_FAILED.search(err) else ()
    left = cluster.job_containers()
    if left:  # clean up so that the next recipe starts from an empty cluster
        sparkrun(env, cwd, "stop", "--all", "--cluster", CLUSTER_NAME)
        cluster.remove_job_containers()
    return RunRecord(
        code,
        out,
        err,
        seconds,
        timed_out=code is None,
        leftovers=tuple(left),
        stop_error=stop_error,
        hooks=hooks,
        known_defect=KNOWN_DEFECTS.get(f"{recipe.repository}/{recipe.relpath}"),
        unknown_flags=flags,
        cap_s=settings.timeout_s,
    )
