"""The corpus checker: finds recipes through manifests, skips other YAML with a reason, excuses unknown runtimes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from recipe_fakes import SIMPLE, FakeRuntimes, write

from sparkrun.recipes.corpus import check_recipe, summarize, survey

REPO = Path(__file__).resolve().parents[3]


def _tree(top: Path) -> None:
    write(top / "reg/.sparkrun/registry.yaml", "registries:\n  - {name: r, recipes: recipes, benchmarks: bench}\n")
    write(top / "reg/recipes/a/good.yaml", SIMPLE)
    write(top / "reg/recipes/odd.yaml", "model: m/x\nruntime: ds4-cuda\n")
    write(top / "reg/bench/profile.yaml", "framework: llama-benchy\nargs: {pp: [1]}\n")
    write(top / "reg/notes.yaml", "just: data\n")
    write(top / "plain/recipes/bad.yaml", SIMPLE.replace("{max_model_len}", "{nope}"))
    write(top / "plain/models.yaml", "  x: 1\nmodels:\n  - name: @a/b\n")
    write(top / "plain/loose-recipe.yaml", SIMPLE)


def test_survey_classifies_files(tmp_path: Path) -> None:
    _tree(tmp_path)
    found = survey(tmp_path)
    assert sorted(str(p.relative_to(tmp_path)) for p, _ in found.recipes) == [
        "plain/loose-recipe.yaml",
        "plain/recipes/bad.yaml",
        "reg/recipes/a/good.yaml",
        "reg/recipes/odd.yaml",
    ]
    skipped = {str(p.relative_to(tmp_path)): why for p, why in found.skipped}
    assert skipped["reg/.sparkrun/registry.yaml"] == "registry manifest"
    assert skipped["reg/bench/profile.yaml"] == "benchmark profile"
    assert skipped["plain/models.yaml"] == "not a recipe: not valid YAML"
    assert skipped["reg/notes.yaml"].startswith("outside the manifest's recipe directories")


def test_summary_excuses_only_unknown_runtimes(tmp_path: Path) -> None:
    _tree(tmp_path)
    found = survey(tmp_path)
    results = [check_recipe(path, registry, FakeRuntimes()) for path, registry in found.recipes]
    summary = summarize(tmp_path, found, results)
    assert summary["recipes"] == 4 and summary["valid"] == 2 and summary["rendered"] == 2
    assert [e["file"] for e in summary["excused"]] == ["reg/recipes/odd.yaml"]
    assert [f["file"] for f in summary["failed"]] == ["plain/recipes/bad.yaml"]
    assert summary["issues_by_kind"]["error unresolved-placeholder"] == 1
    assert summary["median_ms"] > 0


def test_check_corpus_script_passes_shellcheck_and_runs(tmp_path: Path) -> None:
    script = REPO / "scripts" / "check-corpus.sh"
    shellcheck = Path(sys.executable).parent / "shellcheck"
    subprocess.run([str(shellcheck), str(script)], check=True)
    write(tmp_path / "reg/recipes/good.yaml", SIMPLE)
    write(tmp_path / "reg/recipes/odd.yaml", "model: m/x\nruntime: ds4-cuda\n")
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run([str(script), str(tmp_path), "--json"], env=env, capture_output=True, check=False, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["recipes"] == 2 and summary["failed"] == []
    assert "no installed plugin provides it" in summary["excused"][0]["errors"][0]
    write(tmp_path / "reg/recipes/broken.yaml", "model: [\n")
    for target, code in ((tmp_path, 1), (tmp_path / "nope", 2)):
        assert subprocess.run([str(script), str(target)], env=env, capture_output=True, check=False).returncode == code
