"""Distribution when things go wrong, on the test cluster: a sync killed mid-copy resumes without recopying finished
files; a corrupted file on one host is found and only it is copied again; a host that drops out mid-chain is
reported while the others complete; `model-cache prune` frees space and never touches a model in use; with CX7
ports the chain runs over their addresses."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.cli import IMAGE, ok, sparkrun
from e2e.dist_support import (
    HF_CACHE,
    MEDIUM,
    blobs,
    hub_env,
    moved,
    shaped,
    spawn_sync,
    start_hub,
    sync_json,
    wait_for,
    wipe_caches,
    write_recipe,
)
from hubstub.fixtures import GGUF, LLAMA
from hubstub.server import HubStub
from testbed.harness import Testbed

pytestmark = pytest.mark.e2e
PARTIAL = ".sparkrun-partial"


@pytest.fixture(scope="module")
def hub(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubStub]:
    stub = start_hub(tmp_path_factory.mktemp("e2e-hub"))
    yield stub
    stub.stop()


@pytest.fixture
def env(sparkrun_env: dict[str, str], testbed: Testbed, hub: HubStub) -> Iterator[dict[str, str]]:
    wipe_caches(testbed)
    yield hub_env(sparkrun_env, hub)
    shaped(testbed, None)
    for host in testbed.hosts:
        testbed.link(host, up=True)
        testbed.ib(host, on=False)
    sparkrun(sparkrun_env, "stop", "--all", "--cluster", "testbed")
    wipe_caches(testbed)


def complete_blobs(testbed: Testbed, host: str) -> dict[str, int]:
    return {b: n for b, n in blobs(testbed, host, MEDIUM).items() if not b.endswith(PARTIAL)}


def partial_bytes(testbed: Testbed, host: str) -> int:
    return sum(n for b, n in blobs(testbed, host, MEDIUM).items() if b.endswith(PARTIAL))


def test_a_sync_killed_mid_copy_resumes_without_copying_finished_files_again(
    env: dict[str, str], testbed: Testbed, tmp_path: Path
) -> None:
    recipe = write_recipe(tmp_path, "medium", MEDIUM)
    first = testbed.hosts[0]
    code, _report, err = sync_json(env, str(recipe), "--cluster", "testbed", "-H", first)  # the head has it
    assert code == 0, err
    total = sum(complete_blobs(testbed, first).values())
    shaped(testbed, "100mbit")  # ~12 MB/s per link: the copy takes ~10 s
    proc = spawn_sync(env, str(recipe), "--cluster", "testbed")
    last = testbed.hosts[-1]
    wait_for(
        lambda: any(n > 1_000_000 for n in complete_blobs(testbed, last).values()) and partial_bytes(testbed, last),
        120,
        "a finished shard and an unfinished one on the last host",
    )
    proc.send_signal(signal.SIGKILL)  # no goodbye: the copy is cut wherever it is
    proc.wait(timeout=30)
    time.sleep(3)  # the hosts notice their sender is gone
    held = {h: (sum(complete_blobs(testbed, h).values()), partial_bytes(testbed, h)) for h in testbed.hosts[1:]}
    assert any(done and done < total for done, _ in held.values())
    shaped(testbed, None)
    code, report, err = sync_json(env, str(recipe), "--cluster", "testbed")
    assert code == 0, err
    # finished files were not copied again; unfinished ones continued from where they stopped
    assert moved(report, "model ") == {first: 0, **{h: total - done - part for h, (done, part) in held.items()}}


def test_a_corrupted_file_on_one_host_is_found_and_only_it_is_copied_again(
    env: dict[str, str], testbed: Testbed, tmp_path: Path
) -> None:
    recipe = write_recipe(tmp_path, "tiny", LLAMA)
    plain = ok(env, "sync", str(recipe), "--cluster", "testbed", timeout=300)  # a pipe: plain lines, then the table
    assert "ALREADY THERE" in plain.stdout and plain.stdout.count(" ok") == 2 * len(testbed.hosts)  # image + model
    assert f"{testbed.hosts[1]}: model {LLAMA}:" in plain.stderr
    victim = testbed.hosts[1]
    folder = f"{HF_CACHE}/hub/models--test-org--tiny-llama"
    blob = testbed.exec(victim, f"readlink -f {folder}/snapshots/*/model-00001-of-00002.safetensors").stdout.strip()
    size = int(testbed.exec(victim, f"stat -c %s {blob}").stdout)
    testbed.exec(victim, f"printf 'XXXX' | dd of={blob} bs=1 seek=100 conv=notrunc status=none")
    code, report, err = sync_json(env, str(recipe), "--cluster", "testbed")
    assert code == 0, err
    assert moved(report, "model ") == {h: (size if h == victim else 0) for h in testbed.hosts}


def test_a_host_that_drops_out_mid_chain_is_reported_and_the_others_complete(
    env: dict[str, str], testbed: Testbed, tmp_path: Path
) -> None:
    recipe = write_recipe(tmp_path, "medium", MEDIUM)
    first, victim = testbed.hosts[0], testbed.hosts[1]
    code, _report, err = sync_json(env, str(recipe), "--cluster", "testbed", "-H", first)
    assert code == 0, err
    shaped(testbed, "100mbit")
    proc = spawn_sync(env, str(recipe), "--cluster", "testbed")
    wait_for(lambda: partial_bytes(testbed, victim) > 5_000_000, 120, "the copy to reach the second host")
    testbed.link(victim, up=False)  # its cable is pulled mid-chain
    out, err = proc.communicate(timeout=420)
    assert proc.returncode == 6, err  # partial: some hosts synced, one did not
    report = json.loads(out)
    assert list(report["failed"]) == [victim]
    others = [h for h in testbed.hosts if h != victim]
    for host in others:
        assert partial_bytes(testbed, host) == 0 and len(complete_blobs(testbed, host)) >= 4
    assert f"synced {len(others)} of {len(testbed.hosts)} host(s)" in err and f"| {victim}:" in err


def test_prune_frees_space_and_never_touches_a_model_in_use(
    env: dict[str, str], testbed: Testbed, tmp_path: Path
) -> None:
    running = write_recipe(tmp_path, "tiny", LLAMA)
    ok(env, "run", str(running), "--cluster", "testbed", "--tp", "1", "--json", "--no-follow", timeout=300)
    gguf = tmp_path / "gguf.yaml"
    gguf.write_text(f'recipe_version: "2"\nmodel: {GGUF}:Q4_K_M\nruntime: llama-cpp\ncontainer: {IMAGE}\n')
    code, _report, err = sync_json(env, str(gguf), "--cluster", "testbed", "-H", testbed.hosts[0])
    assert code == 0, err
    head = ("--cluster", "testbed", "-H", testbed.hosts[0], "--json")
    listing = json.loads(ok(env, "model-cache", "list", *head).stdout)
    revs = {r["repo"]: r for r in listing[0]["revisions"]}
    assert revs[LLAMA]["in_use_by"] and not revs[GGUF]["in_use_by"]
    pruned = json.loads(ok(env, "model-cache", "prune", "--max-size", "0", *head).stdout)
    assert {d["repo"] for d in pruned["deleted"]} == {GGUF} and pruned["freed"] >= revs[GGUF]["bytes"]
    assert [r["repo"] for r in pruned["refused"]] == [LLAMA]
    assert testbed.exec(testbed.hosts[0], f"ls {HF_CACHE}/hub").stdout.split() == ["models--test-org--tiny-llama"]
    inspected = json.loads(ok(env, "model-cache", "inspect", LLAMA, *head).stdout)
    assert [h["complete"] for h in inspected["hosts"]] == [True]
    status = json.loads(ok(env, "status", "--cluster", "testbed", "--json").stdout)
    assert [j["state"] for j in status["jobs"]] == ["running"]


def ssh_on_cx7(testbed: Testbed, host: str, on: bool) -> None:
    """Let the host's sshd answer on its CX7 address too, as a real Spark's does (the testbed's sshd listens on the
    management address only): a DNAT rule in the host's namespace."""
    i = testbed.index(host)
    rule = f"PREROUTING -d 10.213.0.{100 + i} -p tcp --dport 22 -j DNAT --to-destination {testbed.ip(host)}:22"
    testbed.exec(host, f"iptables -t nat {'-I' if on else '-D'} {rule}", check=on)


def test_with_cx7_ports_the_chain_runs_over_their_addresses_and_falls_back_per_link(
    env: dict[str, str], testbed: Testbed, tmp_path: Path
) -> None:
    hosts = testbed.hosts
    no_cx7_ssh = hosts[2]  # its CX7 port is up, but nothing answers SSH there
    for host in hosts:
        testbed.ib(host, on=True)
    listening = [h for h in hosts if h != no_cx7_ssh]
    for host in listening:
        ssh_on_cx7(testbed, host, on=True)
    try:
        recipe = write_recipe(tmp_path, "tiny", LLAMA)
        code, report, err = sync_json(env, str(recipe), "--cluster", "testbed")
    finally:
        for host in listening:
            ssh_on_cx7(testbed, host, on=False)
    assert code == 0, err
    model = next(i for i in report["items"] if i["item"].startswith("model "))
    routes = {h["host"]: h["route"] for h in model["hosts"]}
    fast = {h: f"10.213.0.{100 + testbed.index(h)}" for h in hosts}
    assert routes == {
        hosts[0]: "downloaded from the Hub",
        hosts[1]: f"from {hosts[0]} over {fast[hosts[1]]} (CX7)",
        hosts[2]: f"from {hosts[1]}",  # its CX7 address did not answer: the management network
        hosts[3]: f"from {hosts[2]} over {fast[hosts[3]]} (CX7)",
    }
