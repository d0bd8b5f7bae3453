"""`scripts/corpus-e2e.py` (`make corpus-e2e`): run every recipe of the public corpus for real on the test cluster.

Each recipe of the corpus registries is launched with the stand-in engine image and must reach ready (then it is
stopped), or fail with one of the documented expected reasons (`corpus_e2e.classify.REASONS`). Anything else is
unexpected: printed with its error line, and the exit status is 1. The table goes to stdout (Markdown) and to
OUT/report.md, the data to OUT/report.json. Needs root (the test cluster); takes turns with e2e test sessions.

Exit status: 0 all ready or expected; 1 something unexpected; 2 bad usage or the cluster/corpus could not be set up;
130 interrupted (Ctrl-C / SIGTERM: the running recipe is stopped first).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from corpus_e2e.classify import classify
from corpus_e2e.cluster import REPO, Cluster, ClusterError, using_test_cluster
from corpus_e2e.registries import (
    CorpusRecipe,
    SetupError,
    control_dir,
    corpus_recipes,
    isolated_env,
    register,
    sparkrun,
    unlisted,
)
from corpus_e2e.report import Context, Row, as_json, column, markdown
from corpus_e2e.runner import CLUSTER_NAME, RunSettings, hosts_used, run_recipe

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "recipes"
DEFAULT_OUT = REPO / "build" / "corpus-e2e"
IMAGE = "sparkrun-test/engine:latest"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scripts/corpus-e2e.py", description=(__doc__ or "").splitlines()[0])
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="corpus directory (default: %(default)s)")
    p.add_argument("--hosts", type=int, default=4, help="test cluster size (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=90.0, help="wall-clock cap per recipe, s (default: %(default)s)")
    p.add_argument("--startup-seconds", type=float, default=0.2, help="STANDIN_STARTUP_SECONDS (default: 0.2)")
    p.add_argument("--image", default=IMAGE, help="engine image (default: %(default)s)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report directory (default: %(default)s)")
    p.add_argument("--only", action="append", default=[], help="run only refs containing this text (repeatable)")
    p.add_argument("--state-dir", type=Path, default=Path("/var/lib/sparkrun-testbed"), help="TB_STATE")
    p.add_argument("--wait", type=float, default=3600.0, help="max seconds to wait for the cluster (default: 3600)")
    p.add_argument("--keep-work", action="store_true", help="keep the work directory (config, cache, git repos)")
    return p


def _say(line: str) -> None:
    print(f"[corpus-e2e] {line}", file=sys.stderr, flush=True)


def _run_all(
    recipes: Sequence[CorpusRecipe], settings: RunSettings, env: dict[str, str], work: Path, cluster: Cluster
) -> list[Row]:
    rows: list[Row] = []
    for i, recipe in enumerate(recipes, 1):
        record = run_recipe(recipe, settings, env, work, cluster)
        verdict = classify(record)
        rows.append(Row(recipe, verdict, record.seconds, hosts_used(record.stdout), record.unknown_flags))
        mark = column(verdict) if verdict.status != "unexpected" else f"UNEXPECTED: {verdict.line}"
        _say(f"{i}/{len(recipes)} {recipe.ref}: {mark} ({record.seconds:.1f}s)")
    return rows


def _final_check(env: dict[str, str], work: Path, cluster: Cluster) -> list[str]:
    """Nothing of any job may be left: sparkrun's own view (status) and each host's dockerd."""
    problems = cluster.job_containers()
    status = sparkrun(env, work, "status", "--json", "--cluster", CLUSTER_NAME)
    try:
        total = json.loads(status.stdout).get("total_containers")
    except json.JSONDecodeError:
        total = None
    if status.returncode != 0 or total != 0:
        problems.append(f"sparkrun status: exit {status.returncode}, total_containers {total}")
    return problems


def _execute(args: argparse.Namespace, work: Path) -> tuple[list[Row], Context, list[str]]:
    env = isolated_env(work, args.state_dir)
    names = register(args.corpus, work, env)
    recipes = corpus_recipes(env, work, names)
    missing = unlisted(args.corpus, recipes)
    if args.only:
        recipes = [r for r in recipes if any(text in r.ref for text in args.only)]
    settings = RunSettings(args.image, args.startup_seconds, args.timeout)
    _say(f"{len(recipes)} recipes from {len(set(names.values()))} repositories; waiting for the test cluster")
    with using_test_cluster(args.state_dir, args.hosts, work / "config", args.wait) as cluster:
        started = time.monotonic() - cluster.up_seconds
        before = cluster.job_containers()
        if before:
            raise ClusterError(f"the test cluster is not clean before the run: {'; '.join(before[:5])}")
        rows = _run_all(recipes, settings, env, work, cluster)
        problems = _final_check(env, work, cluster)
    ctx = Context(
        args.hosts, args.image, args.startup_seconds, args.timeout, time.monotonic() - started, tuple(missing)
    )
    return rows, ctx, problems


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # like Ctrl-C: the running recipe is stopped, the cluster released
    if not args.corpus.is_dir():
        _say(f"{args.corpus}: no corpus directory")
        return 2
    work = Path(tempfile.mkdtemp(prefix="sparkrun-corpus-e2e-"))
    try:
        rows, ctx, problems = _execute(args, work)
    except (ClusterError, SetupError) as exc:
        _say(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        _say("interrupted: the running recipe was stopped and the cluster released")
        return 130
    finally:
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(control_dir(), ignore_errors=True)
    text = markdown(rows, ctx)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text(text)
    (args.out / "report.json").write_text(json.dumps({**as_json(rows, ctx), "problems": problems}, indent=2) + "\n")
    sys.stdout.write(text)
    for problem in problems:
        _say(f"UNEXPECTED after the run: {problem}")
    bad = [r for r in rows if r.verdict.status == "unexpected"]
    for row in bad:
        _say(f"UNEXPECTED {row.recipe.ref}: {row.verdict.line}")
    _say(f"report: {args.out / 'report.md'}")
    return 1 if bad or problems or ctx.unlisted else 0
