"""Model sync with the real host scripts (bash) on hosts that are directories: the chain fills every cache, copies
only what is missing, resumes unfinished copies, finds corrupt files, routes around a host that goes away, and falls
back to copies through this machine without SSH between hosts."""

from __future__ import annotations

from pathlib import Path

import pytest
from distribution_fakes import HomesTransport, blob_path, place

from sparkrun.core.events import Event, TransferFinished, TransferProgress, Warning
from sparkrun.distribution.report import SyncReport
from sparkrun.distribution.runner import sync
from sparkrun.distribution.spec import ModelNeed, SyncSpec
from sparkrun.errors import PartialFailure
from sparkrun.hosts import Host
from sparkrun.models.check import check_cache
from sparkrun.models.errors import ModelNotCachedError
from sparkrun.models.manifest import ModelManifest, ModelRequest

HOSTS = ("h1", "h2", "h3")


def spec_for(manifest: ModelManifest, hosts: tuple[str, ...] = HOSTS, **kw: object) -> SyncSpec:
    need = ModelNeed(ModelRequest(manifest.repo_id, "vllm"), manifest)
    values: dict[str, object] = {"download": "control", "job": "job1", **kw}
    return SyncSpec(tuple(Host(h) for h in hosts), "~/.cache/huggingface", need, None, **values)  # type: ignore[arg-type]


def run_sync(transport: HomesTransport, spec: SyncSpec) -> tuple[SyncReport, list[Event]]:
    seen: list[Event] = []
    return sync(spec, transport, seen.append), seen


def moved(report: SyncReport) -> dict[str, int]:
    return {h: o.moved for h, o in report.items[0].hosts.items()}


def complete(transport: HomesTransport, manifest: ModelManifest, host: str) -> bool:
    return check_cache(transport.hub(host), manifest, verify=True).complete


def copy_scripts(transport: HomesTransport) -> list[str]:
    return [name for _host, name, _s in transport.calls if name in ("model_send", "model_recv")]


def test_a_chain_from_this_machine_fills_every_host_with_checked_files(
    homes: HomesTransport, model_here: ModelManifest
) -> None:
    report, seen = run_sync(homes, spec_for(model_here))
    assert not report.failed
    assert all(complete(homes, model_here, h) for h in HOSTS)
    assert moved(report) == dict.fromkeys(HOSTS, model_here.total_bytes)
    routes = {h: o.route for h, o in report.items[0].hosts.items()}
    assert routes == {"h1": "from this machine", "h2": "from h1", "h3": "from h2"}
    finals = [e for e in seen if isinstance(e, TransferProgress) and e.done == e.total == model_here.total_bytes]
    assert {e.host for e in finals} == set(HOSTS)
    assert report.hf_hub_offline


def test_a_second_sync_moves_nothing_and_runs_no_copy(homes: HomesTransport, model_here: ModelManifest) -> None:
    run_sync(homes, spec_for(model_here))
    homes.calls.clear()
    report, seen = run_sync(homes, spec_for(model_here))
    assert moved(report) == dict.fromkeys(HOSTS, 0)
    assert copy_scripts(homes) == []
    done = [e for e in seen if isinstance(e, TransferFinished)]
    assert {e.host: e.skipped for e in done} == dict.fromkeys(HOSTS, model_here.total_bytes)


def test_only_files_a_host_lacks_are_written_there(
    homes: HomesTransport, model_here: ModelManifest, files: dict[str, bytes]
) -> None:
    shard = "model-00002-of-00002.safetensors"
    place(homes.hub("h1"), model_here, files, only={"config.json", "model-00001-of-00002.safetensors"})
    report, _ = run_sync(homes, spec_for(model_here))
    assert moved(report)["h1"] == len(files[shard])
    assert moved(report)["h2"] == model_here.total_bytes
    assert all(complete(homes, model_here, h) for h in HOSTS)


def test_an_unfinished_copy_resumes_where_it_stopped(
    homes: HomesTransport, model_here: ModelManifest, files: dict[str, bytes]
) -> None:
    shard = "model-00001-of-00002.safetensors"
    partial = Path(str(blob_path(homes.hub("h2"), model_here, shard)) + ".sparkrun-partial")
    partial.parent.mkdir(parents=True)
    partial.write_bytes(files[shard][:1_000_000])
    report, _ = run_sync(homes, spec_for(model_here))
    assert moved(report)["h2"] == model_here.total_bytes - 1_000_000
    assert moved(report)["h1"] == model_here.total_bytes
    assert complete(homes, model_here, "h2") and not partial.exists()


def test_a_corrupted_file_is_found_and_only_it_is_copied_again(
    homes: HomesTransport, model_here: ModelManifest, files: dict[str, bytes]
) -> None:
    run_sync(homes, spec_for(model_here))
    shard = "model-00002-of-00002.safetensors"
    blob = blob_path(homes.hub("h2"), model_here, shard)
    data = bytearray(blob.read_bytes())
    data[1000] ^= 0xFF  # same size, different content
    blob.write_bytes(bytes(data))
    report, _ = run_sync(homes, spec_for(model_here))
    assert moved(report) == {"h1": 0, "h2": len(files[shard]), "h3": 0}
    assert complete(homes, model_here, "h2")


def test_an_unreachable_host_is_reported_and_the_others_complete(tmp_path: Path, model_here: ModelManifest) -> None:
    homes = HomesTransport(tmp_path / "hosts", dead={"h2"})
    report, _ = run_sync(homes, spec_for(model_here))
    assert set(report.failed) == {"h2"} and "timed out" in report.failed["h2"]
    assert complete(homes, model_here, "h1") and complete(homes, model_here, "h3")
    report.hosts = 3
    with pytest.raises(PartialFailure, match="synced 2 of 3"):
        report.check()


def test_a_host_lost_mid_chain_is_routed_around_and_reported(tmp_path: Path, model_here: ModelManifest) -> None:
    homes = HomesTransport(tmp_path / "hosts", dies={"h2"}, dies_after=2_000_000)
    report, _ = run_sync(homes, spec_for(model_here))
    assert set(report.failed) == {"h2"}
    assert complete(homes, model_here, "h1") and complete(homes, model_here, "h3")
    assert report.items[0].hosts["h3"].route == "from h1"  # the second pass skipped the lost host


class NoMeshTransport(HomesTransport):
    def direct_ssh(self, source: Host, sink: Host, address: str) -> list[str]:
        raise NotImplementedError("no SSH between hosts")


def test_without_ssh_between_hosts_copies_go_through_this_machine(
    tmp_path: Path, model_here: ModelManifest, files: dict[str, bytes]
) -> None:
    homes = NoMeshTransport(tmp_path / "hosts")
    place(homes.hub("h2"), model_here, files)  # h2 is the source; h1 and h3 get it through this machine
    report, seen = run_sync(homes, spec_for(model_here))
    assert not report.failed and complete(homes, model_here, "h1") and complete(homes, model_here, "h3")
    assert report.items[0].hosts["h1"].route == "from h2 through this machine"
    assert any(isinstance(e, Warning) and "sparkrun setup ssh" in e.message for e in seen)


def test_a_host_that_holds_the_model_is_the_source(
    homes: HomesTransport, control_hub: Path, manifest: ModelManifest, files: dict[str, bytes]
) -> None:
    place(homes.hub("h3"), manifest, files)
    report, _ = run_sync(homes, spec_for(manifest))
    assert report.items[0].source == "h3" and not report.failed
    assert {h: o.route for h, o in report.items[0].hosts.items()} == {
        "h1": "from h3",
        "h2": "from h1",
        "h3": "already complete",
    }
    assert not control_hub.exists()  # nothing was downloaded here


def test_offline_with_no_complete_copy_lists_the_files_that_are_nowhere(
    homes: HomesTransport, control_hub: Path, manifest: ModelManifest, files: dict[str, bytes]
) -> None:
    place(homes.hub("h1"), manifest, files, only={"config.json"})
    with pytest.raises(ModelNotCachedError) as caught:
        run_sync(homes, spec_for(manifest, offline=True))
    assert set(caught.value.missing) == {p for p in files if p != "config.json"}


def test_a_host_without_the_space_fails_before_anything_is_copied(
    homes: HomesTransport, model_here: ModelManifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sparkrun.distribution import facts

    real = facts.parse_holdings

    def tiny_disk(host: str, result: object, manifest: object) -> facts.HostHoldings:
        held = real(host, result, manifest)  # type: ignore[arg-type]
        return held if host != "h2" else facts.HostHoldings(**{**held.__dict__, "free_bytes": 1000})

    monkeypatch.setattr(facts, "parse_holdings", tiny_disk)
    report, _ = run_sync(homes, spec_for(model_here))
    assert "not enough space" in report.failed["h2"]
    assert moved(report)["h2"] == 0 and complete(homes, model_here, "h3")


def test_losing_the_first_hop_does_not_count_against_the_source(
    tmp_path: Path, control_hub: Path, manifest: ModelManifest, files: dict[str, bytes]
) -> None:
    homes = HomesTransport(tmp_path / "hosts", dies={"h2"}, dies_after=2_000_000)
    place(homes.hub("h1"), manifest, files)  # h1 sends to h2, which goes away mid-copy
    report, _ = run_sync(homes, spec_for(manifest))
    assert set(report.failed) == {"h2"}
    assert complete(homes, manifest, "h3") and report.items[0].hosts["h3"].route == "from h1"
    assert not control_hub.exists()  # h1 still had it: nothing was downloaded


def test_a_host_that_cannot_write_is_reported_and_still_forwards_to_the_next(
    homes: HomesTransport, model_here: ModelManifest
) -> None:
    shard = "model-00001-of-00002.safetensors"
    blocked = Path(str(blob_path(homes.hub("h1"), model_here, shard)) + ".sparkrun-partial")
    blocked.mkdir(parents=True)  # in the way of the partial file: every write to it fails
    report, _ = run_sync(homes, spec_for(model_here))
    assert set(report.failed) == {"h1"} and "cannot write" in report.failed["h1"]
    assert complete(homes, model_here, "h2") and complete(homes, model_here, "h3")
