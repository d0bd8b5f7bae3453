"""Lookup: @registry/name → URL → file → ./recipes/ → registries (visible first) → bundled; ambiguity lists all."""

from __future__ import annotations

from pathlib import Path

import pytest
from recipe_fakes import SIMPLE, write

from sparkrun.errors import RecipeError
from sparkrun.recipes.lookup import Resolver, bundled_dir
from sparkrun.recipes.registry import Registry, RegistryStore


def _registry(name: str, *, visible: bool = True, files: dict[str, str] | None = None) -> Registry:
    reg = Registry(name=name, url=f"file:///registries/{name}", recipes="recipes", visible=visible)
    (reg.clone_dir / ".git").mkdir(parents=True, exist_ok=True)
    for rel, text in (files or {}).items():
        write(reg.recipe_dir / rel, text)
    return reg


def _model(model: str) -> str:
    return SIMPLE.replace("org/model", model)


@pytest.fixture
def world(tmp_path: Path) -> tuple[Resolver, Path]:
    bundled = tmp_path / "bundled"
    write(bundled / "everywhere.yaml", _model("from/bundled"))
    write(bundled / "only-bundled.yaml", _model("from/bundled"))
    cwd = tmp_path / "work"
    write(cwd / "recipes" / "sub" / "everywhere.yaml", _model("from/cwd"))
    write(cwd / "recipes" / "cwd-only.yml", _model("from/cwd"))
    store = RegistryStore(
        [
            _registry("one", files={"everywhere.yaml": _model("from/one"), "x/dup.yaml": _model("from/one")}),
            _registry("two", files={"dup.yaml": _model("from/two"), "nested/deep.yaml": _model("from/two")}),
            _registry("hidden", visible=False, files={"dup.yaml": _model("h"), "secret.yaml": _model("from/hidden")}),
        ]
    )
    return Resolver(cwd=cwd, store=store, bundled=bundled), cwd


def test_file_paths_win_with_or_without_extension(world: tuple[Resolver, Path]) -> None:
    resolver, cwd = world
    write(cwd / "everywhere.yaml", _model("from/file"))
    assert resolver.load("everywhere").model == "from/file"
    assert resolver.load("everywhere.yaml").source.kind == "file"
    assert resolver.load(str(cwd / "everywhere")).source.trusted


def test_cwd_recipes_come_before_registries_and_bundled(world: tuple[Resolver, Path]) -> None:
    resolver, _cwd = world
    found = resolver.load("everywhere")
    assert (found.model, found.source.kind, found.source.trusted) == ("from/cwd", "cwd", True)
    assert resolver.load("cwd-only").model == "from/cwd"
    assert resolver.load("sub/everywhere").model == "from/cwd"


def test_registries_before_bundled_and_visible_before_hidden(world: tuple[Resolver, Path]) -> None:
    resolver, cwd = world
    (cwd / "recipes" / "sub" / "everywhere.yaml").unlink()
    assert resolver.load("everywhere").source.ref == "@one/everywhere"
    assert resolver.load("secret").source.registry == "hidden"
    assert resolver.load("only-bundled").source.kind == "builtin"
    assert resolver.load("deep").source.relpath == "nested/deep"


def test_ambiguity_lists_every_candidate(world: tuple[Resolver, Path]) -> None:
    resolver, _cwd = world
    with pytest.raises(RecipeError) as caught:
        resolver.load("dup")
    assert caught.value.message == "recipe 'dup' is ambiguous: @one/dup, @two/dup"


def test_qualified_references(world: tuple[Resolver, Path]) -> None:
    resolver, _cwd = world
    assert resolver.load("@two/dup").model == "from/two"
    assert resolver.load("@one/x/dup").model == "from/one"
    assert resolver.load("@builtin/everywhere").model == "from/bundled"
    with pytest.raises(RecipeError, match="no recipe 'nope' in registry 'one'"):
        resolver.load("@one/nope")
    with pytest.raises(Exception, match="no registry named 'ghost'"):
        resolver.load("@ghost/x")
    with pytest.raises(RecipeError, match="expected @registry/recipe"):
        resolver.load("@one")


def test_not_found_mentions_registries_not_downloaded(world: tuple[Resolver, Path]) -> None:
    resolver, _cwd = world
    resolver.store.registries.append(Registry(name="later", url="file:///never"))
    with pytest.raises(RecipeError) as caught:
        resolver.load("missing-recipe")
    assert caught.value.message == "recipe 'missing-recipe' not found"
    assert "later" in (caught.value.hint or "") and "registry update" in (caught.value.hint or "")


def test_url_recipes_are_fetched_cached_and_never_trusted(tmp_path: Path) -> None:
    calls: list[str] = []

    def fetch(url: str) -> bytes:
        calls.append(url)
        return _model("from/url").encode()

    notes: list[str] = []
    url = "https://example.invalid/recipes/remote-one.yaml"
    online = Resolver(cwd=tmp_path, store=RegistryStore([]), fetch=fetch, notify=notes.append, use_bundled=False)
    recipe = online.load(url)
    assert (recipe.model, recipe.source.kind, recipe.source.trusted, recipe.source.name) == (
        "from/url",
        "url",
        False,
        "remote-one",
    )

    def offline(_url: str) -> bytes:
        raise OSError("network is unreachable")

    cached = Resolver(cwd=tmp_path, store=RegistryStore([]), fetch=offline, notify=notes.append, use_bundled=False)
    assert cached.load(url).model == "from/url"
    assert notes == [f"cannot fetch {url} (network is unreachable); using the cached copy"]
    with pytest.raises(RecipeError, match="cannot fetch"):
        cached.load("https://example.invalid/other.yaml")
    assert calls == [url]


def test_url_recipe_cannot_include_siblings(tmp_path: Path) -> None:
    resolver = Resolver(cwd=tmp_path, store=RegistryStore([]), fetch=lambda _u: b"include: base\nmodel: a/b\n")
    with pytest.raises(RecipeError, match="include 'base'"):
        resolver.load("https://example.invalid/r.yaml")


def test_bundled_recipes_are_found_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    found = Resolver(store=RegistryStore([])).load("qwen3-1.7b-vllm")
    assert found.source.kind == "builtin" and found.source.trusted
    assert bundled_dir() is not None and found.source.path == bundled_dir() / "qwen3-1.7b-vllm.yaml"


def test_mods_resolve_next_to_the_recipe_then_registry_mods_then_eugr(tmp_path: Path) -> None:
    official = Registry(name="official", url="file:///o", recipes="official-recipes", mods="official-mods")
    eugr = Registry(name="eugr", url="file:///e", recipes="recipes", mods="mods")
    for reg in (official, eugr):
        (reg.clone_dir / ".git").mkdir(parents=True, exist_ok=True)
    text = SIMPLE + "mods: [mods/fix-a, mods/fix-b, local-fix, '@eugr/mods/fix-c']\n"
    write(official.recipe_dir / "r.yaml", text)
    write(official.recipe_dir / "local-fix" / "run.sh", "echo local\n")
    write(official.mods_dir / "fix-a" / "run.sh", "echo a\n")  # type: ignore[operator]
    write(eugr.clone_dir / "mods" / "fix-b" / "run.sh", "echo b\n")
    write(eugr.clone_dir / "mods" / "fix-c" / "run.sh", "echo c\n")
    resolver = Resolver(cwd=tmp_path, store=RegistryStore([official, eugr]), use_bundled=False)
    recipe = resolver.load("@official/r")
    assert resolver.mod_dirs(recipe).found == (
        official.clone_dir / "official-mods" / "fix-a",
        eugr.clone_dir / "mods" / "fix-b",
        official.recipe_dir / "local-fix",
        eugr.clone_dir / "mods" / "fix-c",
    )
    missing = resolver.load(str(write(tmp_path / "m.yaml", SIMPLE + "mods: [mods/nowhere]\n")))
    with pytest.raises(RecipeError, match=r"m\.yaml:\d+: mods\[0\]: no directory 'mods/nowhere'"):
        resolver.mod_dirs(missing).require()
