"""The corpus end-to-end program's own machinery on the test cluster, with a small corpus of its own: a recipe that
becomes ready is stopped; expected failures are recognised from real runs; a run the wall-clock cap ends is
unexpected and leaves nothing behind (sparkrun removes what it started on SIGTERM)."""

from __future__ import annotations

import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.harness import Testbed

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

from corpus_e2e.classify import classify  # noqa: E402 - scripts/ is not a package on the path
from corpus_e2e.cluster import Cluster  # noqa: E402
from corpus_e2e.registries import CorpusRecipe, control_dir, corpus_recipes, isolated_env, register  # noqa: E402
from corpus_e2e.runner import RunSettings, run_recipe  # noqa: E402

pytestmark = pytest.mark.e2e

IMAGE = "sparkrun-test/engine:latest"
RECIPES = {
    "ready": """\
        recipe_version: "2"
        model: Qwen/Qwen3-1.7B
        runtime: vllm
        defaults: {port: 8000, tensor_parallel: 2}
        """,
    "wide": """\
        recipe_version: "2"
        model: Qwen/Qwen3-1.7B
        runtime: vllm
        defaults: {port: 8000, tensor_parallel: 8}
        """,
    "needs-curl": """\
        recipe_version: "2"
        model: Qwen/Qwen3-1.7B
        runtime: vllm
        defaults: {port: 8000}
        pre_exec:
          - mkdir -p /tmp/x
          - curl -fsS http://127.0.0.1:1/x -o /tmp/x/y
        """,
}


Setup = tuple[dict[str, CorpusRecipe], dict[str, str], Path, Cluster]


@pytest.fixture
def corpus_run(testbed: Testbed, tmp_path: Path) -> Iterator[Setup]:
    repo = tmp_path / "corpus" / "tester+recipes" / "recipes"
    repo.mkdir(parents=True)
    for name, body in RECIPES.items():
        (repo / f"{name}.yaml").write_text(textwrap.dedent(body))
    work = tmp_path / "work"
    env = isolated_env(work, testbed.state_dir)
    names = register(tmp_path / "corpus", work, env)
    testbed.script_run("cluster-file", str(work / "config"))
    recipes = {r.ref.rsplit("/", 1)[-1]: r for r in corpus_recipes(env, work, names)}
    yield recipes, env, work, Cluster(testbed.state_dir, testbed.hosts, owned=False)
    shutil.rmtree(control_dir(), ignore_errors=True)


def test_ready_recipes_are_stopped_and_expected_failures_recognised_from_real_runs(
    corpus_run: Setup,
) -> None:
    recipes, env, work, cluster = corpus_run
    settings = RunSettings(IMAGE, 0.2, 90)
    verdicts = {name: classify(run_recipe(recipes[name], settings, env, work, cluster)) for name in RECIPES}
    assert verdicts["ready"].status == "ready", verdicts["ready"]
    assert (verdicts["wide"].status, verdicts["wide"].reason) == ("expected", "too-few-hosts"), verdicts["wide"]
    hook = verdicts["needs-curl"]
    assert (hook.status, hook.reason, hook.what) == (
        "expected",
        "hook-needs-real-engine",
        "pre_exec[1]: curl: not in the stand-in image",
    ), hook
    assert cluster.job_containers() == []


def test_a_run_the_cap_ends_is_unexpected_and_leaves_nothing_behind(
    corpus_run: Setup,
) -> None:
    recipes, env, work, cluster = corpus_run
    record = run_recipe(recipes["ready"], RunSettings(IMAGE, 120, 6), env, work, cluster)
    verdict = classify(record)
    assert record.timed_out and verdict.status == "unexpected", verdict
    assert verdict.line.startswith("timed out: still running at the 6 s cap (last: waiting for"), verdict.line
    assert verdict.line.endswith("then: interrupted: the job's containers were removed)")
    assert record.leftovers == () and cluster.job_containers() == []
