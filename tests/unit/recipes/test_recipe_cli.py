"""The `recipe`/`registry` commands and the `list`/`search`/`show` aliases, through `sparkrun.cli:cli`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from recipe_fakes import SIMPLE, FakeRuntimes, make_repo, write

from sparkrun.cli import cli
from sparkrun.errors import ExitCode, RecipeError


@pytest.fixture(autouse=True)
def fake_runtimes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeRuntimes:
    monkeypatch.chdir(tmp_path)
    fakes = FakeRuntimes()
    monkeypatch.setattr("sparkrun.plugins.load_runtimes", lambda: fakes)
    return fakes


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_list_shows_bundled_recipes_and_a_single_note_about_registries() -> None:
    result = run("list", "--json")
    assert result.exit_code == 0, result.output
    refs = {e["ref"]: e for e in json.loads(result.stdout)}
    assert {"qwen3-1.7b-vllm", "qwen3-1.7b-vllm-ray", "qwen3-1.7b-sglang", "qwen3-1.7b-llama-cpp"} <= set(refs)
    assert refs["qwen3-1.7b-vllm-ray"]["runtime"] == "vllm-ray" and refs["qwen3-1.7b-vllm"]["error"] is None
    assert result.stderr.count("note:") == 1 and "registry update" in result.stderr


def test_search_and_runtime_filter() -> None:
    result = run("search", "sglang", "--json")
    assert [e["ref"] for e in json.loads(result.stdout)] == ["qwen3-1.7b-sglang"]
    result = run("recipe", "list", "--runtime", "vllm", "--json")
    assert sorted(e["ref"] for e in json.loads(result.stdout)) == ["qwen3-1.7b-vllm", "qwen3-1.7b-vllm-ray"]


def test_show_json_has_values_origins_and_rank_argv() -> None:
    result = run("show", "qwen3-1.7b-vllm", "--tp", "2", "-o", "max_num_seqs=8", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["runtime"] == "vllm-distributed" and data["nodes"] == 2
    assert data["settings"]["tensor_parallel"] == 2 and data["origins"]["tensor_parallel"] == "cli"
    assert data["origins"]["max_model_len"] == "recipe" and data["settings"]["max_num_seqs"] == 8
    head, worker = data["ranks"]
    assert head["argv"][:3] == ["vllm", "serve", "Qwen/Qwen3-1.7B"]
    assert "--tensor-parallel-size" in head["argv"] and worker["argv"][-2:] == ["--node-rank", "1"]


def test_show_text_prints_the_command(tmp_path: Path) -> None:
    write(tmp_path / "recipes" / "mine.yaml", SIMPLE)
    result = run("recipe", "show", "mine")
    assert result.exit_code == 0, result.output
    assert "vllm serve org/model --port 8000 --host 0.0.0.0 --max-model-len 4096" in result.stdout
    assert "Runtime:      vllm-distributed" in result.stdout


def test_show_unknown_recipe_is_a_recipe_error(tmp_path: Path) -> None:
    result = run("show", "no-such-recipe")
    assert isinstance(result.exception, RecipeError)
    assert result.exception.exit_code == ExitCode.INPUT


def test_validate_exit_codes(tmp_path: Path) -> None:
    good = write(tmp_path / "good.yaml", SIMPLE)
    warn = write(tmp_path / "warn.yaml", SIMPLE + "solo_only: true\n")
    bad = write(tmp_path / "bad.yaml", SIMPLE.replace("{max_model_len}", "{nope}"))
    assert run("recipe", "validate", str(good)).exit_code == 0
    assert run("recipe", "validate", str(warn)).exit_code == 0
    assert run("recipe", "validate", str(warn), "--strict").exit_code == ExitCode.WARNINGS
    result = run("recipe", "validate", str(bad))
    assert result.exit_code == ExitCode.INPUT
    assert f"{bad}:8: command: placeholder {{nope}} names nothing" in result.stdout
    assert "[error unresolved-placeholder; the older sparkrun accepts this]" in result.stdout


def test_validate_json_and_unloadable_file(tmp_path: Path) -> None:
    broken = write(tmp_path / "broken.yaml", "model: [unclosed\n")
    result = run("recipe", "validate", str(broken), "--json")
    assert result.exit_code == ExitCode.INPUT
    data = json.loads(result.stdout)
    assert data["valid"] is False and data["issues"][0]["code"] == "load-error"
    assert data["issues"][0]["where"].startswith(str(broken))


def test_validate_bundled_recipes_cleanly() -> None:
    for name in ("qwen3-1.7b-vllm", "qwen3-1.7b-vllm-ray", "qwen3-1.7b-sglang", "qwen3-1.7b-llama-cpp"):
        result = run("recipe", "validate", name, "--strict")
        assert result.exit_code == 0, result.output


def test_registry_commands_with_a_local_repository(tmp_path: Path) -> None:
    _repo, url = make_repo(tmp_path / "repo", {"recipes/local-one.yaml": SIMPLE})
    added = run("registry", "add", url, "--name", "mine")
    assert added.exit_code == 0, added.output
    assert "added registry mine (untrusted)" in added.stderr
    listed = json.loads(run("registry", "list", "--json").stdout)
    assert [(r["name"], r["is_trusted"], r["cloned"]) for r in listed if r["url"] == url] == [("mine", False, True)]
    assert {"official", "eugr"} <= {r["name"] for r in listed}  # the shipped defaults stay
    assert run("registry", "trust", "mine").exit_code == 0
    assert json.loads(run("registry", "show", "mine", "--json").stdout)["is_trusted"] is True
    found = json.loads(run("list", "--registry", "mine", "--json").stdout)
    assert [e["ref"] for e in found] == ["@mine/local-one"]
    assert run("registry", "update", "mine").exit_code == 0
    assert run("registry", "disable", "mine").exit_code == 0
    assert run("registry", "remove", "mine").exit_code == 0
    assert "mine" not in {r["name"] for r in json.loads(run("registry", "list", "--json").stdout)}


def test_registry_errors_are_one_line() -> None:
    result = run("registry", "show", "ghost")
    assert result.exception is not None and "no registry named 'ghost'" in str(result.exception)
