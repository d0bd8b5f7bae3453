"""`readiness:` typed like the older tool read it, and `mods:` found in the registry a recipe comes from."""

from __future__ import annotations

from pathlib import Path

import pytest
from recipe_fakes import SIMPLE, recipe_from, write

from sparkrun.errors import RecipeError
from sparkrun.recipes.mods import find_mod_dirs
from sparkrun.recipes.readiness import Readiness, parse_readiness
from sparkrun.recipes.registry import Registry, RegistryStore


def _parse(data: dict[str, object]) -> tuple[Readiness, list[tuple[str, str]]]:
    readiness, issues = parse_readiness(data, lambda key: f"r.yaml ({key})")
    return readiness, [(i.severity, i.code) for i in issues]


def test_timeouts_are_seconds_written_as_numbers_or_numeric_text() -> None:
    readiness, issues = _parse({"port_timeout_s": "30", "health_timeout_s": 12.2, "rendezvous_timeout_s": 1e3})
    assert (readiness.port_timeout, readiness.health_timeout, readiness.rendezvous_timeout) == (30, 13, 1000)
    assert issues == []


@pytest.mark.parametrize("value", ["1m", "soon", True, [1]])
def test_timeouts_that_are_no_number_are_errors(value: object) -> None:
    assert _parse({"port_timeout_s": value})[1] == [("error", "invalid-readiness")]


def test_timeouts_of_zero_or_less_keep_the_default_with_a_warning() -> None:
    readiness, issues = _parse({"port_timeout_s": 0, "health_timeout_s": -1})
    assert (readiness.port_timeout, readiness.health_timeout) == (1800, 900)
    assert issues == [("warning", "readiness-value"), ("warning", "readiness-value")]


def test_inference_is_a_boolean_and_quoted_booleans_are_read_with_a_warning() -> None:
    assert _parse({"inference": False}) == (Readiness(inference=False), [])
    readiness, issues = _parse({"inference": "no"})
    assert readiness.inference is False and issues == [("warning", "readiness-quoted-boolean")]
    assert _parse({"inference": "maybe"})[1] == [("error", "invalid-readiness")]


def test_prompt_style_and_unknown_keys() -> None:
    assert _parse({"inference_prompt": "hi"})[0].prompt == "hi"
    assert _parse({"inference_prompt": ""})[1] == [("error", "invalid-readiness")]
    assert _parse({"inference_style": "auto"})[1] == []
    assert _parse({"inference_style": "anthropic-messages-stream-v1"})[1] == [("warning", "readiness-value")]
    assert _parse({"inference_style": "carrier-pigeon"})[1] == [("error", "invalid-readiness")]
    assert _parse({"probe_every": 3})[1] == [("warning", "unknown-readiness-key")]


def test_the_budget_covers_every_phase_that_runs() -> None:
    assert Readiness(port_timeout=10, health_timeout=20, inference_timeout=30).budget == 120.0
    assert Readiness(port_timeout=10, health_timeout=20, inference=False).budget == 90.0


def test_from_recipe_raises_the_first_error_naming_the_key() -> None:
    with pytest.raises(RecipeError, match=r"readiness\.port_timeout_s: expected a number of seconds, got 'soon'"):
        Readiness.from_recipe({"port_timeout_s": "soon"}, lambda key: "r.yaml:3")


def test_the_loader_reports_readiness_problems_with_their_line(tmp_path: Path) -> None:
    text = SIMPLE + "readiness:\n  port_timeout_s: soon\n"
    recipe = recipe_from(text, path=write(tmp_path / "r.yaml", text))
    assert [(i.code, i.where) for i in recipe.issues] == [("invalid-readiness", f"{tmp_path / 'r.yaml'}:10")]


# ---- mods ----------------------------------------------------------------------------------------------------------
MANIFEST = """registries:
  - {name: official, recipes: official-recipes, mods: official-mods}
  - {name: experimental, recipes: experimental-recipes, mods: experimental-mods, visible: false}
"""


def _registry_tree(root: Path) -> Path:
    write(root / ".sparkrun/registry.yaml", MANIFEST)
    write(root / "experimental-mods/mods/fix-x/run.sh", "echo x\n")
    write(root / "official-mods/fix-y/run.sh", "echo y\n")
    return write(root / "experimental-recipes/qwen/r.yaml", SIMPLE + "mods: [mods/fix-x, mods/fix-y]\n")


def test_a_recipe_loaded_by_path_in_a_registry_checkout_finds_that_registrys_mods(tmp_path: Path) -> None:
    path = _registry_tree(tmp_path / "checkout")
    mods = find_mod_dirs(recipe_from(path.read_text(), path=path), RegistryStore)
    assert mods.found == (
        tmp_path / "checkout/experimental-mods/mods/fix-x",  # its own manifest entry first
        tmp_path / "checkout/official-mods/fix-y",  # then the other entries' mods
    )
    assert mods.missing == ()


def test_a_registry_clone_in_the_cache_without_manifest_uses_the_configured_mods_dir(tmp_path: Path) -> None:
    reg = Registry(name="solo", url="https://example.invalid/solo.git", mods="mods")
    write(reg.clone_dir / "mods/fix-z/run.sh", "echo z\n")
    path = write(reg.clone_dir / "recipes/r.yaml", SIMPLE + "mods: [fix-z]\n")
    mods = find_mod_dirs(recipe_from(path.read_text(), path=path), lambda: RegistryStore([reg]))
    assert mods.found == (reg.clone_dir / "mods/fix-z",)


def test_missing_mods_say_which_registry_to_add_with_its_url() -> None:
    recipe = recipe_from(SIMPLE + "mods: [mods/fix-q]\n")
    mods = find_mod_dirs(recipe, lambda: RegistryStore([]))
    assert mods.missing[0].hint == (
        "registry 'eugr' is not added: run `sparkrun registry add https://github.com/spark-arena/eugr-recipes.git`"
    )
    with pytest.raises(RecipeError, match=r"mods\[0\]: no directory 'mods/fix-q' with a run\.sh") as caught:
        mods.require()
    assert "sparkrun registry add https://github.com/spark-arena/eugr-recipes.git" in (caught.value.hint or "")


def test_missing_mods_of_a_configured_registry_say_to_download_it() -> None:
    recipe = recipe_from(SIMPLE + "mods: ['@official/mods/fix-q']\n")
    mods = find_mod_dirs(recipe, RegistryStore.load)  # the shipped defaults: configured, never downloaded
    assert mods.missing[0].hint == "registry 'official' is not downloaded: run `sparkrun registry update official`"
    unknown = find_mod_dirs(recipe_from(SIMPLE + "mods: ['@elsewhere/fix']\n"), RegistryStore.load)
    assert unknown.missing[0].hint == "registry 'elsewhere' is not added: add it with `sparkrun registry add URL`"


def test_a_checkout_without_its_mods_directory_says_so(tmp_path: Path) -> None:
    path = _registry_tree(tmp_path / "checkout")
    for run_sh in (tmp_path / "checkout").glob("*-mods/**/run.sh"):
        run_sh.unlink()
    (tmp_path / "checkout/experimental-mods/mods/fix-x").rmdir()
    (tmp_path / "checkout/experimental-mods/mods").rmdir()
    (tmp_path / "checkout/experimental-mods").rmdir()
    hint = find_mod_dirs(recipe_from(path.read_text(), path=path), lambda: RegistryStore([])).missing[0].hint
    assert hint.startswith(f"this registry checkout ({tmp_path / 'checkout'}) has no experimental-mods/ directory")
