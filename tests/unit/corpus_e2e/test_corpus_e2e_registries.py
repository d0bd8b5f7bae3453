"""The corpus end-to-end run registers the corpus as users would (local git repositories, `registry add --trust`),
and finds every recipe of it through `sparkrun list`. Hermetic: file:// registries only, the real CLI as a
subprocess."""

from __future__ import annotations

import json
from pathlib import Path

from corpus_e2e.registries import corpus_recipes, isolated_env, register, sparkrun, unlisted

RECIPE = """recipe_version: "2"
model: Qwen/Qwen3-1.7B
runtime: vllm
defaults: {{port: 8000}}
command: vllm serve {{model}} --port {{port}}{extra}
"""


def _corpus(top: Path) -> Path:
    arena = top / "spark-arena+recipe-registry"
    (arena / ".sparkrun").mkdir(parents=True)
    (arena / ".sparkrun" / "registry.yaml").write_text(
        "registries:\n  - {name: official, recipes: official-recipes, mods: official-mods}\n"
        "  - {name: experimental, recipes: experimental-recipes, visible: false}\n"
    )
    (arena / "official-recipes" / "qwen3").mkdir(parents=True)
    (arena / "official-recipes" / "qwen3" / "small.yaml").write_text(RECIPE.format(extra=""))
    (arena / "experimental-recipes").mkdir()
    (arena / "experimental-recipes" / "small.yaml").write_text(RECIPE.format(extra=" --enforce-eager"))
    (arena / "benchmarking").mkdir()
    (arena / "benchmarking" / "profile.yaml").write_text("args: {}\n")
    plain = top / "someone+sparkrun-recipes"
    (plain / "recipes").mkdir(parents=True)
    (plain / "recipes" / "other.yaml").write_text(RECIPE.format(extra=""))
    for path in [top, *top.rglob("*")]:  # like the shared corpus: read-only snapshots
        path.chmod(0o555 if path.is_dir() else 0o444)
    return top


def test_every_corpus_repository_becomes_a_trusted_registry_and_every_recipe_is_listed(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "corpus")
    work = tmp_path / "work"
    env = isolated_env(work, tmp_path / "tb")
    env["SPARKRUN_SSH_CONTROL_DIR"] = str(tmp_path / "cm")  # no SSH here; keep /tmp clean
    names = register(corpus, work, env)
    assert names == {
        "official": "spark-arena+recipe-registry",
        "experimental": "spark-arena+recipe-registry",
        "someone": "someone+sparkrun-recipes",
    }
    regs = {r["name"]: r for r in json.loads(sparkrun(env, work, "registry", "list", "--json").stdout)}
    assert all(regs[n]["is_trusted"] and regs[n]["url"].startswith("file://") for n in names)
    assert not regs["eugr"]["cloned"]  # the other shipped defaults stay, not downloaded
    recipes = corpus_recipes(env, work, names)
    found = sorted((r.registry, r.relpath, r.repository) for r in recipes)
    assert found == [
        ("experimental", "experimental-recipes/small.yaml", "spark-arena+recipe-registry"),
        ("official", "official-recipes/qwen3/small.yaml", "spark-arena+recipe-registry"),
        ("someone", "recipes/other.yaml", "someone+sparkrun-recipes"),
    ]
    assert {r.ref for r in recipes} >= {"@official/small", "@experimental/small", "@someone/other"}
    assert unlisted(corpus, recipes) == []
    assert unlisted(corpus, [r for r in recipes if r.registry != "someone"]) == [
        "someone+sparkrun-recipes/recipes/other.yaml"
    ]
