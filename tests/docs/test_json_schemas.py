"""The JSON Schemas on the documentation site match what `--json` really emits, for every command that needs no
hosts (`status --json` and `run --json` are checked on the test cluster: tests/e2e/test_json_schemas_live.py; `sync`,
`model-cache` and `setup` against stand-in hosts: test_json_schemas_hosts.py). The schemas forbid unknown fields, so a
field added to an output without documenting it fails here."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from docs.doc_examples import ROOT
from docs.doc_schemas import FAKE_HOST_SCHEMAS, problems, schema_files
from sparkrun.cli import cli
from sparkrun.models import metacache
from sparkrun.models.repoinfo import RepoEntry, RepoSnapshot

HOOKED_RECIPE = """\
recipe_version: "2"
model: Qwen/Qwen3-1.7B
runtime: vllm
defaults: {port: 8000, served_model_name: qwen3-1.7b}
pre_exec:
  - echo preparing
post_exec:
  - {command: "echo ready", timeout: 30}
post_commands:
  - echo done on the control machine
"""

# Schemas checked only on the test cluster (they describe what running hosts report).
E2E_ONLY = {"status", "run"}
QWEN, QWEN_COMMIT = "Qwen/Qwen3-1.7B", "70d244cc86ccca08cf5af4e1e306ecf908b1ad5e"
QWEN_CONFIG = {
    "model_type": "qwen3",
    "hidden_size": 2048,
    "intermediate_size": 6144,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 151936,
    "max_position_embeddings": 40960,
    "torch_dtype": "bfloat16",
}


def sparkrun_json(*args: str) -> Any:
    result = CliRunner().invoke(cli, [*args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return json.loads(result.stdout)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project directory: ./recipes/ with a good, a hooked and a broken recipe; one saved cluster."""
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "hooked.yaml").write_text(HOOKED_RECIPE, encoding="utf-8")
    (recipes / "broken.yaml").write_text("model: [unclosed\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    CliRunner().invoke(
        cli,
        ["cluster", "create", "lab", "-H", "10.0.0.11,10.0.0.12", "-u", "ubuntu", "--ssh-key", "~/.ssh/k",
         "--ssh-port", "2222", "--ssh-option", "ServerAliveInterval=5", "--connect-timeout", "5",
         "--cache-dir", "/data/hf", "--download", "head", "--ulimit", "nofile=1024", "--docker-arg=--cap-add=IPC_LOCK",
         "-e", "NCCL_DEBUG=WARN", "--default"],
    )  # fmt: skip
    CliRunner().invoke(cli, ["cluster", "create", "plain", "-H", "10.0.0.21"])
    yield tmp_path


@pytest.fixture
def cached_metadata(workdir: Path) -> Path:
    """Qwen3-1.7B's file list and config in sparkrun's metadata cache, as an earlier online run leaves them: the
    memory estimate and the dry-run's model manifest need no Hub then."""
    shards = {"model-00001-of-00002.safetensors": 3_441_185_608, "model-00002-of-00002.safetensors": 622_329_984}
    files = [RepoEntry("config.json", 726, "c" * 40), RepoEntry("tokenizer.json", 11_422_654, "d" * 40)]
    files += [RepoEntry(p, n, "e" * 40, hashlib.sha256(p.encode()).hexdigest()) for p, n in shards.items()]
    metacache.save_snapshot(RepoSnapshot(QWEN, QWEN_COMMIT, tuple(files)), "main")
    metacache.save_fact(QWEN, QWEN_COMMIT, "config.json", QWEN_CONFIG)
    metacache.save_fact(QWEN, QWEN_COMMIT, "safetensors-index", sorted(shards))
    return workdir


# Each case: (schema, command line). Together they cover every schema that needs no hosts.
CASES = [
    ("list", ["list", "--json"]),
    ("list", ["list", "qwen", "--runtime", "vllm", "--json"]),
    ("show", ["show", "qwen3-1.7b-vllm", "--json"]),
    ("show", ["show", "qwen3-1.7b-llama-cpp", "--tp", "2", "--json"]),
    ("recipe-validate", ["recipe", "validate", "qwen3-1.7b-sglang", "--json"]),
    ("recipe-validate", ["recipe", "validate", "recipes/broken.yaml", "--json"]),
    ("recipe-validate", ["recipe", "validate", "no-such-recipe", "--json"]),
    ("run-dry-run", ["run", "qwen3-1.7b-vllm", "-H", "h1,h2", "--tp", "2", "--dry-run", "--json"]),
    ("run-dry-run", ["run", "qwen3-1.7b-llama-cpp", "-H", "h1,h2,h3", "--tp", "3", "--dry-run", "--json"]),
    ("run-dry-run", ["run", "hooked", "-H", "h1", "-e", "MY_API_KEY=s3cr3t-value", "--dry-run", "--json"]),
    ("plugins-list", ["plugins", "list", "--json"]),
    ("cluster-list", ["cluster", "list", "--json"]),
    ("cluster-show", ["cluster", "show", "lab", "--json"]),
    ("cluster-show", ["cluster", "show", "plain", "--json"]),
    ("registry-list", ["registry", "list", "--json"]),
    ("registry-show", ["registry", "show", "official", "--json"]),
    ("sync", ["sync", "qwen3-1.7b-vllm", "-H", "h1,h2", "--dry-run", "--json"]),
    ("recipe-vram", ["recipe", "vram", "qwen3-1.7b-vllm", "--json"]),
]
# With the model's metadata cached (fixture cached_metadata): the estimate and the manifest are known.
CACHED_CASES = [
    ("recipe-vram", ["recipe", "vram", "qwen3-1.7b-vllm", "--tp", "2", "--json"]),
    ("show", ["show", "qwen3-1.7b-vllm", "--json"]),
    ("run-dry-run", ["run", "qwen3-1.7b-vllm", "-H", "h1,h2", "--tp", "2", "--dry-run", "--json"]),
    ("sync", ["sync", "qwen3-1.7b-vllm", "-H", "h1,h2,h3", "--download", "control", "--dry-run", "--json"]),
]


@pytest.mark.parametrize(("schema", "args"), CASES, ids=[" ".join(a) for _, a in CASES])
def test_json_output_matches_its_documented_schema(workdir: Path, schema: str, args: list[str]) -> None:
    document = sparkrun_json(*args)
    assert problems(schema, document) == []


@pytest.mark.parametrize(("schema", "args"), CACHED_CASES, ids=[" ".join(a) for _, a in CACHED_CASES])
def test_json_output_with_cached_model_metadata_matches_its_schema(
    cached_metadata: Path, schema: str, args: list[str]
) -> None:
    document = sparkrun_json(*args)
    assert problems(schema, document) == []


def test_every_schema_is_tested_and_listed_on_the_json_page() -> None:
    names = {p.name.removesuffix(".schema.json") for p in schema_files()}
    assert names == {s for s, _ in CASES + CACHED_CASES} | E2E_ONLY | FAKE_HOST_SCHEMAS
    page = (ROOT / "website" / "docs" / "reference" / "json.md").read_text(encoding="utf-8")
    assert set(re.findall(r'--8<-- "reference/schemas/([\w-]+)\.schema\.json"', page)) == names


def _first_object(document: Any) -> dict[str, Any]:
    return document[0] if isinstance(document, list) else document


@pytest.mark.parametrize(("schema", "args"), CASES[::2], ids=[" ".join(a) for _, a in CASES[::2]])
def test_schema_rejects_an_undocumented_field(workdir: Path, schema: str, args: list[str]) -> None:
    document = copy.deepcopy(sparkrun_json(*args))
    if isinstance(document, list) and not document:
        pytest.skip("empty list: nothing to add a field to")
    _first_object(document)["undocumented_field"] = 1
    assert any("undocumented_field" in p for p in problems(schema, document))


def test_schema_rejects_a_missing_field(workdir: Path) -> None:
    document = sparkrun_json("run", "qwen3-1.7b-vllm", "-H", "h1", "--dry-run", "--json")
    del document["ranks"][0]["docker_argv"]
    assert problems("run-dry-run", document) == ["ranks/0: 'docker_argv' is a required property"]


def test_outputs_exercise_the_optional_parts_of_their_schemas(workdir: Path) -> None:
    # The cases above must reach the interesting branches, or the schema tests would prove little.
    listed = sparkrun_json("list", "--json")
    assert any(e["error"] for e in listed) and any(not e["error"] for e in listed)
    hooked = sparkrun_json("run", "hooked", "-H", "h1", "-e", "MY_API_KEY=s3cr3t-value", "--dry-run", "--json")
    assert hooked["ranks"][0]["pre_hooks"] and hooked["post_exec"] and hooked["post_commands"]
    assert hooked["ranks"][0]["secret_env"] == ["MY_API_KEY"]
    plugins = sparkrun_json("plugins", "list", "--json")
    assert any(not p["ok"] for p in plugins), "the broken test plugin (make install) should be listed"
    invalid = sparkrun_json("recipe", "validate", "recipes/broken.yaml", "--json")
    assert invalid["issues"] and not invalid["valid"]
    assert sparkrun_json("cluster", "show", "lab", "--json")["download"] == "head"
    assert sparkrun_json("recipe", "vram", "qwen3-1.7b-vllm", "--json")["available"] is False


def test_cached_metadata_reaches_the_known_branches_of_the_schemas(cached_metadata: Path) -> None:
    assert sparkrun_json("recipe", "vram", "qwen3-1.7b-vllm", "--json")["available"] is True
    assert sparkrun_json("show", "qwen3-1.7b-vllm", "--json")["vram"]["fits"] is True
    plan = sparkrun_json("run", "qwen3-1.7b-vllm", "-H", "h1", "--dry-run", "--json")
    assert plan["distribution"]["model"]["known"] is True and plan["distribution"]["memory"]["available"] is True


def test_dry_run_json_never_contains_a_secret_value(workdir: Path) -> None:
    # The plan is published (CI previews, tickets): a secret given with -e must not appear in it, by value.
    args = ["run", "hooked", "-H", "h1", "-e", "MY_API_KEY=s3cr3t-value", "--dry-run", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0 and "MY_API_KEY" in result.stdout
    assert "s3cr3t-value" not in result.stdout
