"""Git registries built as local repositories (file:// URLs): add, update, offline use, trust, remove."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from recipe_fakes import SIMPLE, commit_file, make_repo

from sparkrun.config import config_dir
from sparkrun.errors import ConfigError
from sparkrun.recipes import registry as reg
from sparkrun.recipes.lookup import Resolver
from sparkrun.recipes.registry import RegistryStore, recipe_files

MANIFEST = """\
registries:
  - name: alpha
    description: the visible one
    recipes: official-recipes
    benchmarks: benchmarking
    mods: official-mods
  - name: beta
    recipes: experimental-recipes
    visible: false
"""


@pytest.fixture
def arena(tmp_path: Path) -> tuple[Path, str]:
    return make_repo(
        tmp_path / "src" / "recipe-registry",
        {
            ".sparkrun/registry.yaml": MANIFEST,
            "official-recipes/qwen/vllm/small-vllm.yaml": SIMPLE,
            "official-recipes/shared.yaml": SIMPLE,
            "experimental-recipes/shared.yaml": SIMPLE.replace("org/model", "org/experimental"),
            "experimental-recipes/only-exp.yaml": SIMPLE,
            "benchmarking/profile.yaml": "framework: llama-benchy\n",
            "official-mods/fix/run.sh": "echo fix\n",
            "big/unrelated.bin": "x" * 1000,
        },
    )


def _notes() -> tuple[list[str], reg.Notify]:
    seen: list[str] = []
    return seen, seen.append


def test_defaults_are_listed_untrusted_and_not_downloaded() -> None:
    store = RegistryStore.load()
    assert store.from_defaults
    assert {r.name for r in store} >= {"official", "experimental", "eugr", "community"}
    assert not any(r.is_trusted or r.cloned for r in store)
    assert not (config_dir() / "registries.yaml").exists()


def test_add_registers_every_manifest_entry_with_a_sparse_checkout(arena: tuple[Path, str]) -> None:
    _repo, url = arena
    store = RegistryStore([])
    added = reg.add(store, url, name=None, trust=False)
    assert [(r.name, r.recipes, r.visible, r.is_trusted) for r in added] == [
        ("alpha", "official-recipes", True, False),
        ("beta", "experimental-recipes", False, False),
    ]
    assert added[0].commit and len(added[0].commit) == 40
    clone = added[0].clone_dir
    assert (clone / "official-recipes/qwen/vllm/small-vllm.yaml").is_file()
    assert (clone / "official-mods/fix/run.sh").is_file()
    assert not (clone / "big").exists()  # sparse: only declared directories
    saved = RegistryStore.load()
    assert [r.name for r in saved] == ["alpha", "beta"] and not saved.from_defaults
    assert [p.name for p in recipe_files(saved.get("alpha"))] == ["small-vllm.yaml", "shared.yaml"]


def test_add_with_name_picks_one_manifest_entry_and_rejects_clashes(arena: tuple[Path, str]) -> None:
    _repo, url = arena
    store = RegistryStore([])
    assert [r.name for r in reg.add(store, url, name="beta", trust=True)] == ["beta"]
    assert store.get("beta").is_trusted
    with pytest.raises(ConfigError, match="none is named 'gamma'"):
        reg.add(store, url, name="gamma", trust=False)
    with pytest.raises(ConfigError, match="already exists"):
        reg.add(store, url, name="beta", trust=False)


def test_repository_without_manifest_uses_recipes_dir_and_given_name(tmp_path: Path) -> None:
    _repo, url = make_repo(tmp_path / "plain", {"recipes/mine.yaml": SIMPLE, "README.md": "hi"})
    (added,) = reg.add(RegistryStore([]), url, name="mine", trust=False)
    assert (added.name, added.recipes) == ("mine", "recipes")
    assert [p.name for p in recipe_files(added)] == ["mine.yaml"]


def test_update_moves_to_the_new_commit_and_records_it(arena: tuple[Path, str]) -> None:
    repo, url = arena
    store = RegistryStore([])
    reg.add(store, url, name=None, trust=False)
    before = store.get("alpha").commit
    after = commit_file(repo, "official-recipes/new.yaml", SIMPLE)
    notes, notify = _notes()
    results = reg.update(store, None, notify)
    assert (
        [(r.name, outcome) for r, outcome in results]
        == [
            ("alpha", f"{before[:10]} -> {after[:10]}"),  # type: ignore[index]
            ("beta", f"{before[:10]} -> {after[:10]}"),  # type: ignore[index]
        ]
    )
    assert RegistryStore.load().get("beta").commit == after and notes == []
    assert (store.get("alpha").recipe_dir / "new.yaml").is_file()


def test_unreachable_remote_uses_the_cached_copy_with_one_note(arena: tuple[Path, str]) -> None:
    repo, url = arena
    store = RegistryStore([])
    reg.add(store, url, name=None, trust=False)
    shutil.rmtree(repo)
    notes, notify = _notes()
    results = reg.update(store, ["alpha"], notify)
    assert [outcome for _r, outcome in results] == ["cached"]
    assert len(notes) == 1 and notes[0].startswith("registry alpha: cannot update (")
    assert "using the cached copy" in notes[0] and "\n" not in notes[0]
    resolver = Resolver(store=store, use_bundled=False)
    assert resolver.load("@alpha/small-vllm").model == "org/model"


def test_unreachable_remote_without_clone_fails_cleanly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        reg.add(RegistryStore([]), f"file://{tmp_path}/missing", name=None, trust=False)
    assert caught.value.message.startswith(f"cannot clone file://{tmp_path}/missing: ")
    assert "\n" not in caught.value.message


def test_naming_a_registry_recipe_clones_it_on_first_use(arena: tuple[Path, str]) -> None:
    _repo, url = arena
    store = RegistryStore([reg.Registry(name="alpha", url=url, recipes="official-recipes", origin="default")])
    notes, notify = _notes()
    resolver = Resolver(store=store, notify=notify, use_bundled=False)
    assert resolver._registries("shared") is None  # unqualified names never trigger a download
    recipe = resolver.load("@alpha/shared")
    assert recipe.source.kind == "registry" and not recipe.source.trusted
    assert recipe.source.ref == "@alpha/shared"
    assert notes == [f"registry alpha: downloading {url} (first use)"]
    assert RegistryStore.load().get("alpha").commit


def test_recorded_registry_expands_to_its_manifest_on_first_update(arena: tuple[Path, str]) -> None:
    _repo, url = arena
    store = RegistryStore([])
    (recorded,) = reg.add(store, url, name="arena", trust=True, fetch=False)
    assert recorded.commit is None and not recorded.cloned
    notes, notify = _notes()
    reg.update(store, None, notify)
    assert [(r.name, r.is_trusted) for r in RegistryStore.load()] == [("alpha", True), ("beta", True)]
    assert notes == [f"registry arena: {url} declares alpha, beta; registered those instead"]


def test_trust_follows_the_url(arena: tuple[Path, str]) -> None:
    _repo, url = arena
    store = RegistryStore([])
    reg.add(store, url, name=None, trust=False)
    assert reg.set_flag(store, "alpha", trusted=True).is_trusted
    moved = reg.replace(store.get("alpha"), url=url + "-moved")
    assert not moved.is_trusted
    assert not reg.set_flag(store, "alpha", trusted=False).is_trusted


def test_disable_and_enable(arena: tuple[Path, str]) -> None:
    _repo, url = arena
    store = RegistryStore([])
    reg.add(store, url, name=None, trust=False)
    reg.set_flag(store, "alpha", enabled=False)
    resolver = Resolver(store=RegistryStore.load(), use_bundled=False)
    with pytest.raises(Exception, match="disabled"):
        resolver.load("@alpha/shared")
    assert resolver.load("shared").source.registry == "beta"  # the hidden one is still searched


def test_remove_deletes_the_clone_when_unused(arena: tuple[Path, str]) -> None:
    _repo, url = arena
    store = RegistryStore([])
    (alpha, _beta) = reg.add(store, url, name=None, trust=False)
    reg.remove(store, "alpha")
    assert alpha.clone_dir.exists()  # beta still uses it
    reg.remove(store, "beta")
    assert not alpha.clone_dir.exists()
    assert list(RegistryStore.load()) == []


@pytest.mark.parametrize("name", ["builtin", "bad name", "-x", ""])
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="invalid registry name"):
        reg.check_name(name)
