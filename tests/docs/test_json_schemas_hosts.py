"""The JSON Schemas of outputs that need hosts (`sync`, `model-cache`, `setup`) match what the real commands emit. The
CLI runs for real with the session's transport replaced by stand-in hosts from the unit tests:

- `sync` and `model-cache`: hosts that are directories, each with its own HOME, running the real host scripts with
  bash (`tests/unit/distribution/distribution_fakes.py`); their `docker` is a stub that holds the image and lists the
  running jobs written in `$HOME/running`;
- `setup`: the in-memory fake that answers `setup_check.sh` like a DGX Spark (`tests/unit/setup/setup_fakes.py`).

Every document is checked against its schema, and `sync`'s JSON event lines on stderr against the events schema.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from docs.doc_schemas import FAKE_HOST_SCHEMAS, problems
from sparkrun.api import Session
from sparkrun.cli import main
from sparkrun.clusters import Cluster, save_cluster
from sparkrun.hosts import Host, SshSettings
from sparkrun.models import metacache
from sparkrun.models.repoinfo import RepoEntry, RepoSnapshot
from sparkrun.transport.ssh import HOST_KEY_UNKNOWN
from unit.distribution.distribution_fakes import HomesTransport, manifest_for, model_files, place
from unit.setup.setup_fakes import FakeHosts, prepared, unreachable

MODEL = "test-org/tiny-model"
COMMIT = "c0ffee" + "0" * 34
IMAGE = "nvcr.io/nvidia/vllm:25.09-py3"
RECIPE = f"recipe_version: '2'\nmodel: {MODEL}\nruntime: vllm\ncontainer: {IMAGE}\ndefaults: {{port: 8000}}\n"
# docker on the directory hosts: every host holds IMAGE (same id); `ps` lists the jobs in $HOME/running
DOCKER_STUB = """#!/bin/sh
case "$1" in
  version) echo 27.0 ;;
  image) echo "sha256:4f2a 1000 " ;;
  ps) cat "$HOME/running" 2>/dev/null ;;
esac
exit 0
"""


@dataclass(frozen=True)
class Run:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def sparkrun(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """The CLI's real entry point (errors become exit codes there), its output captured."""

    def invoke(*args: str) -> Run:
        with pytest.raises(SystemExit) as done:
            main(list(args))
            raise SystemExit(0)
        out = capsys.readouterr()
        return Run(int(done.value.code or 0), out.out, out.err)

    return invoke


def document(result: Run) -> Any:
    return json.loads(result.stdout)


# ---- sync and model-cache: hosts that are directories ------------------------------------------------------------
@pytest.fixture
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HomesTransport]:
    """Directory hosts behind the CLI; a recipe for a small model whose metadata (an earlier online run) is cached
    here; the model complete in this machine's Hugging Face cache."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(DOCKER_STUB)
    (bin_dir / "docker").chmod(0o755)
    transport = HomesTransport(tmp_path / "hosts", dead={"h4"}, path=f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(Session, "transport", property(lambda self: transport))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "control-hub"))
    files = model_files(size=1 << 20)
    manifest = manifest_for(files, repo=MODEL, commit=COMMIT)
    entries = [RepoEntry(f.path, f.size, f.blob_id or "e" * 40, f.sha256) for f in manifest.files]
    metacache.save_snapshot(RepoSnapshot(MODEL, COMMIT, tuple(entries)), "main")
    metacache.save_fact(MODEL, COMMIT, "config.json", {"model_type": "llama"})
    metacache.save_fact(MODEL, COMMIT, "safetensors-index", sorted(p for p in files if p.endswith(".safetensors")))
    place(tmp_path / "control-hub", manifest, files)
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "tiny.yaml").write_text(RECIPE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    yield transport


def test_sync_json_and_its_event_lines_match_their_schemas(homes: HomesTransport, sparkrun: Callable[..., Run]) -> None:
    result = sparkrun("sync", "tiny", "-H", "h1,h2,h3,h4", "--download", "control", "--json")
    assert result.exit_code == 6  # h4 does not answer; the others complete
    synced = document(result)
    assert problems("sync", synced) == []
    assert list(synced["failed"]) == ["h4"]
    model = next(i for i in synced["items"] if i["item"] == f"model {MODEL}")
    assert {h["host"]: h["moved"] > 0 for h in model["hosts"] if not h["error"]} == dict.fromkeys(("h1", "h2", "h3"), 1)

    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert [(n, problems("events", e)) for n, e in enumerate(lines) if problems("events", e)] == []
    assert {"phase", "step", "transfer", "transfer-done"} <= {e["event"] for e in lines}


def test_model_cache_json_outputs_match_their_schemas(homes: HomesTransport, sparkrun: Callable[..., Run]) -> None:
    assert sparkrun("sync", "tiny", "-H", "h1,h2", "--json").exit_code == 0
    (homes.home(Host("h1")) / "running").write_text(f"job-a {MODEL}\n")
    partial = homes.hub("h2") / "models--test-org--tiny-model" / "blobs" / ("f" * 64 + ".sparkrun-partial")
    partial.write_bytes(b"x" * 100)

    listed = document(sparkrun("model-cache", "list", "-H", "h1,h2,h4", "--json"))
    assert problems("model-cache-list", listed) == []
    by_host = {c["host"]: c for c in listed}
    assert by_host["h1"]["revisions"][0]["in_use_by"] == ["job-a"] and by_host["h2"]["orphans"]
    assert by_host["h4"]["error"]

    inspected = document(sparkrun("model-cache", "inspect", MODEL, "-H", "h1,h3", "--json"))
    assert problems("model-cache-inspect", inspected) == []
    assert [h["complete"] for h in inspected["hosts"]] == [True, False]

    pruned = document(sparkrun("model-cache", "prune", "-H", "h1,h2", "--max-size", "0", "--dry-run", "--json"))
    assert problems("model-cache-change", pruned) == []
    assert pruned["refused"] and pruned["deleted"] and pruned["dry_run"]

    result = sparkrun("model-cache", "delete", MODEL, "-H", "h1,h2", "--json")
    assert result.exit_code == 6  # h1's revision is in use: kept
    deleted = document(result)
    assert problems("model-cache-change", deleted) == []
    assert {d["host"] for d in deleted["deleted"]} == {"h2"} and [r["host"] for r in deleted["refused"]] == ["h1"]


# ---- setup: the fake DGX Sparks ----------------------------------------------------------------------------------
H1, H2, H3 = "10.0.0.11", "10.0.0.12", "10.0.0.13"


@pytest.fixture
def sparks(monkeypatch: pytest.MonkeyPatch) -> FakeHosts:
    """Three hosts: 10.0.0.12 cannot use docker and has no earlyoom; 10.0.0.13's cache belongs to root."""
    fake = FakeHosts(
        **{
            "10_0_0_12": {"docker": "denied permission denied", "docker_member": "no", "earlyoom": "missing inactive "},
            "10_0_0_13": {"cache_foreign": "/home/spark/.cache/huggingface/hub"},
        }
    )
    fake.on("setup_host", "@sr changed done\n")
    save_cluster(Cluster("lab", (H1, H2, H3), ssh=SshSettings(user="spark")))
    monkeypatch.setattr(Session, "transport", property(lambda self: fake.transport))
    return fake


def test_setup_check_and_fix_json_match_their_schemas(sparks: FakeHosts, sparkrun: Callable[..., Run]) -> None:
    result = sparkrun("setup", "check", "--cluster", "lab", "--json")
    assert result.exit_code == 4
    report = document(result)
    assert problems("setup-check", report) == []
    assert report["summary"]["fail"] == 3 and any(c["fixable"] for c in report["checks"])

    sparks.states[H3] = unreachable(H3, "SSH connection timed out")
    fixed = document(sparkrun("setup", "check", "--cluster", "lab", "--fix", "--json"))
    assert problems("setup-check-fix", fixed) == []
    assert fixed["applied"] and not fixed["after"]["hosts"][2]["reachable"]


def test_setup_plan_and_result_json_match_their_schemas(sparks: FakeHosts, sparkrun: Callable[..., Run]) -> None:
    plan = document(sparkrun("setup", "docker-group", "--cluster", "lab", "--dry-run", "--json"))
    assert problems("setup-plan", plan) == []
    assert any("noop" in s for s in plan["steps"]) and any("detail" in s for s in plan["steps"])

    applied = document(sparkrun("setup", "earlyoom", "--cluster", "lab", "--json"))
    assert problems("setup-result", applied) == []
    assert applied["changed_hosts"] == [H2]


def test_setup_ssh_plan_lists_an_unknown_host_key_in_its_schema(
    sparks: FakeHosts, sparkrun: Callable[..., Run]
) -> None:
    key = prepared(H3)["hostkey"][0]
    sparks.states[H3] = unreachable(H3, HOST_KEY_UNKNOWN)
    sparks.on("setup_control", f"@sr known_hosts_file /root/.ssh/known_hosts\n@sr name {H3}\n@sr scanned {key}\n")
    plan = document(sparkrun("setup", "ssh", "--cluster", "lab", "--dry-run", "--json"))
    assert problems("setup-plan", plan) == []
    assert [k["host"] for k in plan["host_keys"]] == [H3]


def test_setup_wizard_json_matches_its_schema(sparks: FakeHosts, sparkrun: Callable[..., Run]) -> None:
    planned = document(sparkrun("setup", "wizard", "--cluster", "lab", "--dry-run", "--json"))
    assert problems("setup-wizard", planned) == []
    assert planned["check"] is None and any(s["plan"] for s in planned["steps"])

    result = sparkrun("setup", "wizard", "--cluster", "lab", "--yes", "--json")
    done = document(result)
    assert problems("setup-wizard", done) == []
    assert done["check"] is not None and any(s["result"] for s in done["steps"])


def test_these_tests_cover_every_schema_of_an_output_that_needs_hosts() -> None:
    source = Path(__file__).read_text(encoding="utf-8")
    used = {name for name in FAKE_HOST_SCHEMAS if f'problems("{name}"' in source}
    assert used == FAKE_HOST_SCHEMAS
