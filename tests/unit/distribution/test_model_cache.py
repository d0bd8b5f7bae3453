"""`model-cache` with the real model_cache.sh on hosts that are directories: what a host holds (size, refs, last
used, in use), least-recently-used pruning to a size target, and never deleting a revision a running job uses (the
host's `docker ps` is a stand-in script here)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from distribution_fakes import HomesTransport, blob_path, manifest_for, place

from sparkrun.clusters import Cluster, HostSelection
from sparkrun.distribution.cache import HostCache, Revision, delete_plan, prune_selection
from sparkrun.distribution.cache_ops import CacheOps
from sparkrun.distribution.facts import Context
from sparkrun.distribution.spec import SyncSpec
from sparkrun.hosts import Host
from sparkrun.models.layout import RepoCache, write_ref

OLD, NEW, OTHER = "a" * 40, "b" * 40, "c" * 40


def docker_stub(tmp_path: Path, running: str) -> str:
    """A PATH whose `docker ps` lists `running` (lines "JOB MODEL") as the hosts' sparkrun containers."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "docker").write_text(f"#!/bin/sh\n[ \"$1\" = ps ] && printf '%s' '{running}'\nexit 0\n")
    (bin_dir / "docker").chmod(0o755)
    return f"{bin_dir}:{os.environ['PATH']}"


def fill(homes: HomesTransport, host: str) -> dict[str, int]:
    """Three revisions on `host`: tiny@OLD (used long ago by job-old), tiny@NEW (main, used now by job-new),
    other@OTHER (never used by sparkrun), plus an unfinished copy. Returns each revision's size."""
    hub = homes.hub(host)
    state = hub.parent / "sparkrun" / "used"
    sizes = {}
    for repo, commit, n in (("test-org/tiny", OLD, 3000), ("test-org/tiny", NEW, 5000), ("test-org/other", OTHER, 700)):
        files = {"config.json": b"{}", "weights.safetensors": os.urandom(n)}
        manifest = manifest_for(files, repo=repo, commit=commit)
        place(hub, manifest, files)
        sizes[commit] = sum(len(v) for v in files.values())
    write_ref(RepoCache(hub, "test-org/tiny"), "main", NEW)
    for commit, job, when in ((OLD, "job-old", 1_000_000), (NEW, "job-new", None)):
        record = state / "models--test-org--tiny" / commit
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(job + "\n")
        if when:
            os.utime(record, (when, when))
    partial = hub / "models--test-org--other" / "blobs" / ("f" * 64 + ".sparkrun-partial")
    partial.write_bytes(b"x" * 123)
    return sizes


def ops(homes: HomesTransport, hosts: tuple[str, ...] = ("h1",)) -> CacheOps:
    selection = HostSelection(tuple(Host(h) for h in hosts), "test", Cluster("", hosts))
    return CacheOps(selection, homes, lambda e: None)


def test_the_list_shows_each_revision_with_size_refs_last_use_and_users(tmp_path: Path) -> None:
    homes = HomesTransport(tmp_path / "hosts", path=docker_stub(tmp_path, "job-new test-org/tiny\n"))
    sizes = fill(homes, "h1")
    (cache,) = ops(homes).scan()
    revs = {r.commit: r for r in cache.revisions}
    assert {c: r.bytes for c, r in revs.items()} == sizes
    assert revs[NEW].refs == ("main",) and revs[NEW].files == 2
    assert revs[OLD].last_used == 1_000_000 and revs[NEW].last_used > 1_000_000
    assert revs[NEW].in_use_by == ("job-new",) and revs[OLD].in_use_by == () and revs[OTHER].in_use_by == ()
    assert cache.orphans == {"models--test-org--other": 123}
    assert cache.disk_free and cache.disk_total


def test_prune_removes_the_least_recently_used_revisions_first_and_never_one_in_use(tmp_path: Path) -> None:
    homes = HomesTransport(tmp_path / "hosts", path=docker_stub(tmp_path, "job-new test-org/tiny\n"))
    sizes = fill(homes, "h1")
    change = ops(homes).prune(max_bytes=0, min_free=None, dry_run=False)
    gone = {(d["repo"], d["commit"]) for d in change.deleted}
    assert gone == {("test-org/tiny", OLD), ("test-org/other", OTHER), ("test-org/other", "orphans")}
    assert [r["commit"] for r in change.refused] == [NEW] and "job-new" in change.refused[0]["why"]
    # OLD's config.json blob is NEW's too (same content), so it stays
    assert change.freed == (sizes[OLD] - len(b"{}")) + sizes[OTHER] + 123
    hub = homes.hub("h1")
    assert not (hub / "models--test-org--other").exists()
    assert (hub / "models--test-org--tiny" / "snapshots" / NEW).is_dir()
    assert not (hub / "models--test-org--tiny" / "snapshots" / OLD).exists()
    (left,) = ops(homes).scan()
    assert [r.commit for r in left.revisions] == [NEW]


def test_prune_to_a_size_stops_once_the_cache_is_small_enough(tmp_path: Path) -> None:
    homes = HomesTransport(tmp_path / "hosts", path=docker_stub(tmp_path, ""))
    sizes = fill(homes, "h1")
    change = ops(homes).prune(max_bytes=sizes[NEW] + sizes[OTHER], min_free=None, dry_run=True)
    assert {d["commit"] for d in change.deleted} == {OLD, "orphans"}  # OLD is the least recently used
    (cache,) = ops(homes).scan()
    assert len(cache.revisions) == 3  # a dry run deletes nothing


def test_the_host_refuses_to_delete_a_revision_a_running_job_uses(tmp_path: Path) -> None:
    homes = HomesTransport(tmp_path / "hosts", path=docker_stub(tmp_path, "job-new test-org/tiny:Q4_K_M\n"))
    fill(homes, "h1")
    spec = SyncSpec((Host("h1"),), "~/.cache/huggingface")
    plan = delete_plan({"h1": [f"models--test-org--tiny/{NEW}"]}, spec.hosts, spec.hub_dir, spec.state_dir)
    ((_step, result),) = Context(spec, homes, lambda e: None).run(plan)
    assert result.output.all("refused") == [f"models--test-org--tiny {NEW} job-new"]
    assert (homes.hub("h1") / "models--test-org--tiny" / "snapshots" / NEW).is_dir()


def test_deleting_one_revision_keeps_blobs_another_revision_still_links(tmp_path: Path) -> None:
    homes = HomesTransport(tmp_path / "hosts", path=docker_stub(tmp_path, ""))
    files = {"config.json": b"{}", "weights.safetensors": os.urandom(4000)}
    hub = homes.hub("h1")
    for commit in (OLD, NEW):
        place(hub, manifest_for(files, commit=commit), files)
    change = ops(homes).delete("test-org/tiny", revision=OLD[:8], dry_run=False)
    assert [(d["commit"], d["bytes"]) for d in change.deleted] == [(OLD, 0)]  # the blobs are shared with NEW
    assert blob_path(hub, manifest_for(files, commit=NEW), "weights.safetensors").exists()


def rev(commit: str, size: int, last: float, in_use: tuple[str, ...] = ()) -> Revision:
    return Revision("h1", "models--o--m", commit, size, 1, last, in_use_by=in_use)


@pytest.mark.parametrize(
    ("max_bytes", "min_free", "expected"),
    [
        (250, None, ["a"]),  # 400 -> 250: the oldest alone is enough
        (50, None, ["a", "c"]),  # b is in use, so 50 cannot be reached
        (None, 450, ["a", "c"]),  # free 100 -> 450
        (None, None, []),
    ],
)
def test_prune_selection_is_least_recently_used_first(
    max_bytes: int | None, min_free: int | None, expected: list[str]
) -> None:
    cache = HostCache(
        "h1",
        revisions=(rev("b", 100, 1.0, ("job",)), rev("a", 200, 2.0), rev("c", 100, 3.0)),
        disk_free=100,
    )
    assert [r.commit for r in prune_selection(cache, max_bytes=max_bytes, min_free=min_free)] == expected
