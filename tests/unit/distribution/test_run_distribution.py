"""`run` and `run --dry-run` with distribution, against the FakeTransport: the sync happens between the probe and the
start groups, a synced model makes the containers run with HF_HUB_OFFLINE=1, the memory estimate is in the header and
refuses a plan that cannot fit unless --force, and the dry-run shows the sync phases and what the job needs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sparkrun.api import RecipeInput, Session, Target
from sparkrun.core.events import Event, MemoryEstimate, Warning
from sparkrun.errors import Refused
from sparkrun.hosts import Host
from sparkrun.jobs.records import JobStore
from sparkrun.models import metacache
from sparkrun.models.errors import HubUnreachableError
from sparkrun.models.repoinfo import RepoEntry, RepoSnapshot
from sparkrun.shell import Script
from sparkrun.transport.fake import FakeTransport, events

IMAGE = "sparkrun-test/engine:latest"
MODEL = "Qwen/Qwen3-1.7B"
COMMIT = "70d244cc86ccca08cf5af4e1e306ecf908b1ad5e"
SHARDS = {"model-00001-of-00002.safetensors": 3_000_000_000, "model-00002-of-00002.safetensors": 1_000_000_000}
SMALL_CONFIG = {
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


def cache_metadata(config: dict[str, object], shards: dict[str, int] = SHARDS) -> None:
    """What an earlier online run left in sparkrun's metadata cache for the model."""
    files = [RepoEntry("config.json", 700, "c" * 40), RepoEntry("tokenizer.json", 9000, "d" * 40)]
    files += [RepoEntry(p, n, "e" * 40, hashlib.sha256(p.encode()).hexdigest()) for p, n in shards.items()]
    metacache.save_snapshot(RepoSnapshot(MODEL, COMMIT, tuple(files)), "main")
    metacache.save_fact(MODEL, COMMIT, "config.json", config)
    metacache.save_fact(MODEL, COMMIT, "safetensors-index", sorted(shards))


def probe(host: Host, script: Script) -> str:
    return events(("docker", "ok 27.0"), ("home", "/home/ops"), ("curl", "yes"), ("image", f"{IMAGE} sha256:1"))


def holds_everything(host: Host, script: Script) -> str:
    paths = [p for p in script.text.split("FILE_PATHS=(", 1)[1].split(")", 1)[0].split()]
    items = [("model-file", f"present 1 {p}") for p in paths] + [("free_kb", "900000000"), ("curl", "yes")]
    items += [("docker", "ok"), ("image", f"{IMAGE} sha256:1 10 -")]
    return events(*items)


def ready(host: Host, script: Script) -> str:
    return events(("models", "qwen3-1.7b"), ("ready", "0.5"))


def fake() -> FakeTransport:
    return FakeTransport({"probe": probe, "sync_probe": holds_everything, "readiness": ready})


def session(transport: FakeTransport, tmp_path: Path) -> tuple[Session, list[Event]]:
    seen: list[Event] = []
    return Session(emit=seen.append, transport=transport, store=JobStore(tmp_path)), seen


def given(**kw: object) -> RecipeInput:
    return RecipeInput("qwen3-1.7b-vllm", values={"tensor_parallel": 2}, image=IMAGE, **kw)  # type: ignore[arg-type]


TWO = Target(hosts="10.0.0.1,10.0.0.2")


def test_a_run_syncs_between_the_probe_and_the_start_and_the_containers_run_offline(tmp_path: Path) -> None:
    cache_metadata(SMALL_CONFIG)
    t = fake()
    s, seen = session(t, tmp_path)
    result = s.run(given(), TWO)
    assert [sc.name for _h, sc in t.scripts] == [
        "probe",
        "probe",
        "sync_probe",
        "sync_probe",
        "lease",
        "lease",
        "launch",
        "launch",
        "readiness",
        "lease",
        "lease",
    ]
    launch = next(sc for _h, sc in t.scripts if sc.name == "launch")
    assert "HF_HUB_OFFLINE=1" in launch.text
    assert [i["item"] for i in result.sync["items"]] == [f"image {IMAGE}", f"model {MODEL}"]
    header = [e for e in seen if isinstance(e, MemoryEstimate)]
    assert len(header) == 1 and header[0].fits and "Memory per host" in header[0].text


def test_a_plan_that_cannot_fit_is_refused_before_anything_moves_unless_forced(tmp_path: Path) -> None:
    cache_metadata(
        SMALL_CONFIG, {"model-00001-of-00002.safetensors": 200 * 10**9, "model-00002-of-00002.safetensors": 1}
    )
    t = fake()
    s, _seen = session(t, tmp_path)
    with pytest.raises(Refused, match=r"needs about .* GiB per host") as caught:
        s.run(given(), TWO)
    assert caught.value.hint and "--force" in caught.value.hint
    assert [sc.name for _h, sc in t.scripts] == ["probe", "probe"]
    assert s.run(given(force=True), TWO).ready


def test_the_dry_run_shows_the_sync_phases_and_what_the_job_needs(tmp_path: Path) -> None:
    cache_metadata(SMALL_CONFIG)
    t = fake()
    s, _seen = session(t, tmp_path)
    plan = s.plan_run(given(), TWO)
    assert t.scripts == []
    phases = [p for p, _steps in plan.plan.phases()]
    assert phases[:5] == ["probe", "sync: check", "sync: image", "sync: model", "lease"]
    assert phases[5].startswith("start group")
    assert plan.distribution["model"]["commit"] == COMMIT and plan.distribution["model"]["total_bytes"] > 4e9
    assert any("4.00 GB" in n for n in plan.plan.notes)
    assert plan.distribution["memory"]["fits"] is True
    rank = plan.job.ranks[0]
    assert ("HF_HUB_OFFLINE", "1") in rank.container.env
    assert s.run(given(), TWO).job.job == plan.job.job


def test_without_sync_nothing_is_copied_and_the_engine_finds_the_model_itself(tmp_path: Path) -> None:
    cache_metadata(SMALL_CONFIG)
    t = fake()
    s, _seen = session(t, tmp_path)
    result = s.run(given(sync=False), TWO)
    assert "sync_probe" not in [sc.name for _h, sc in t.scripts]
    assert ("HF_HUB_OFFLINE", "1") not in result.job.ranks[0].container.env
    plan = s.plan_run(given(sync=False), TWO)
    assert [p for p, _ in plan.plan.phases()][1:3] == ["lease", "start group 0"]


def test_an_unknown_file_list_under_hf_hub_offline_is_not_synced_and_says_so(tmp_path: Path) -> None:
    t = fake()  # tests run with HF_HUB_OFFLINE=1 and an empty metadata cache
    s, seen = session(t, tmp_path)
    result = s.run(given(), TWO)
    warnings = [e.message for e in seen if isinstance(e, Warning)]
    assert any("is not synced" in w and "HF_HUB_OFFLINE" in w for w in warnings)
    assert "sync_probe" not in [sc.name for _h, sc in t.scripts]
    assert ("HF_HUB_OFFLINE", "1") not in result.job.ranks[0].container.env


def test_offline_a_run_copies_an_image_that_one_host_has_instead_of_refusing(tmp_path: Path) -> None:
    cache_metadata(SMALL_CONFIG)

    def only_the_head(host: Host, script: Script) -> str:
        found = "sha256:1" if host.address == "10.0.0.1" else "-"
        return events(("docker", "ok 27.0"), ("home", "/home/ops"), ("curl", "yes"), ("image", f"{IMAGE} {found}"))

    def holds_model_not_image(host: Host, script: Script) -> str:
        answer = holds_everything(host, script)
        return answer if host.address == "10.0.0.1" else answer.replace("sha256:1 10", "- 0")

    t = FakeTransport(
        {
            "probe": only_the_head,
            "sync_probe": holds_model_not_image,
            "image_recv": events(("hop-start", "10.0.0.2 77"), ("hop-end", "10.0.0.2 4096 4096")),
            "readiness": ready,
        }
    )
    s, _seen = session(t, tmp_path)
    result = s.run(given(offline=True), TWO)
    names = [sc.name for _h, sc in t.scripts]
    assert names.index("image_recv") < names.index("launch")
    assert [h for h, sc in t.scripts if sc.name == "image_recv"] == [Host("10.0.0.2")]
    image = next(i for i in result.sync["items"] if i["item"].startswith("image "))
    assert {h["host"]: h["moved"] for h in image["hosts"]} == {"10.0.0.1": 0, "10.0.0.2": 4096}


def test_a_hub_this_machine_cannot_reach_leaves_the_model_to_the_engine_but_sync_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: connection refused at once
    t = fake()
    s, seen = session(t, tmp_path)
    result = s.run(given(), TWO)  # an air-gapped control machine still launches, as the older tool does
    warned = [e.message for e in seen if isinstance(e, Warning)]
    assert any(f"model {MODEL} is not synced: this machine cannot reach the Hub" in w for w in warned), warned
    assert ("HF_HUB_OFFLINE", "1") not in result.job.ranks[0].container.env
    assert "launch" in [sc.name for _h, sc in t.scripts]
    with pytest.raises(HubUnreachableError) as raised:  # `sparkrun sync` was asked for the model: it fails
        s.sync(given(), TWO)
    assert raised.value.exit_code == 4
