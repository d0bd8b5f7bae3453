"""From a fresh cluster to serving: `run` fetches the model once and the image once, copies both to every host, and
the stand-in engines find the model offline (STANDIN_CHECK_MODEL=1 with HF_HUB_OFFLINE=1). A second run moves
nothing. The Hugging Face token reaches the head's download and the containers but no output, job record or process
list."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.cli import IMAGE, ok, sparkrun, sparkrun_containers
from e2e.dist_support import (
    HF_CACHE,
    ProcessWatch,
    files_containing,
    hub_env,
    image_only_on,
    moved,
    start_hub,
    sync_json,
    wipe_caches,
    write_recipe,
)
from hubstub.fixtures import GATED, GOOD_TOKEN, LLAMA
from hubstub.server import HubStub
from testbed.harness import SetState, Testbed

pytestmark = pytest.mark.e2e
REGISTRY_NAME = "nvidia/vllm:25.09-py3"


@pytest.fixture(scope="module")
def hub(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubStub]:
    stub = start_hub(tmp_path_factory.mktemp("e2e-hub"))
    yield stub
    stub.stop()


@pytest.fixture
def env(sparkrun_env: dict[str, str], testbed: Testbed, hub: HubStub) -> Iterator[dict[str, str]]:
    wipe_caches(testbed)
    yield hub_env(sparkrun_env, hub, token=GOOD_TOKEN)
    sparkrun(sparkrun_env, "stop", "--all", "--cluster", "testbed")
    wipe_caches(testbed)


def run_all(env: dict[str, str], recipe: Path, hosts: int) -> dict[str, object]:
    args = ("run", str(recipe), "--cluster", "testbed", "--tp", str(hosts), "-e", "STANDIN_CHECK_MODEL=1")
    r = ok(env, *args, "--json", "--no-follow", timeout=600)
    assert GOOD_TOKEN not in r.stdout + r.stderr
    data: dict[str, object] = json.loads(r.stdout)
    return data


def test_a_fresh_cluster_gets_the_model_and_image_once_and_serves(
    env: dict[str, str], testbed: Testbed, hub: HubStub, tmp_path: Path
) -> None:
    hosts = testbed.hosts
    (image,) = testbed.registry_push(REGISTRY_NAME)  # served by the registry under a realistic name ...
    recipe = write_recipe(tmp_path, "gated-tiny", GATED, image=image)
    vram = json.loads(ok(env, "recipe", "vram", str(recipe), "--tp", str(len(hosts)), "--json").stdout)
    assert vram["fits"] is True and vram["hosts"] == len(hosts)  # reads headers and config: metadata, now cached
    hub.stats.reset()
    with image_only_on(testbed, []), ProcessWatch(testbed, GOOD_TOKEN) as watch:  # ... and on no host
        first = run_all(env, recipe, len(hosts))
        for host in hosts:
            testbed.docker(host, "image", "inspect", image)
    assert first["ready"] is True
    sync = first["sync"]
    assert isinstance(sync, dict) and sync["failed"] == {} and sync["hf_hub_offline"] is True
    model = next(i for i in sync["items"] if i["item"] == f"model {GATED}")
    assert hub.bytes_served(GATED) == model["total"]  # fetched once for four hosts
    assert moved(sync, "model ") == dict.fromkeys(hosts, model["total"])  # the head's is its download
    pulled = next(i for i in sync["items"] if i["item"] == f"image {image}")
    assert pulled["hosts"][0]["route"] == "pulled from its registry"  # once, by the head
    assert all(h["moved"] > 0 and h["route"].startswith("from ") for h in pulled["hosts"][1:])
    for host in hosts:
        assert testbed.exec(host, f"ls {HF_CACHE}/hub/models--test-org--gated-llama/snapshots/*/config.json").stdout
        (info,) = json.loads(testbed.docker(host, "inspect", sparkrun_containers(testbed, [host])[host][0]).stdout)
        assert "HF_HUB_OFFLINE=1" in info["Config"]["Env"]
    assert watch.polls > 3 and watch.hits == []  # the token never showed in a process list on a host
    assert files_containing(Path(env["SPARKRUN_CACHE_DIR"]), GOOD_TOKEN) == []  # nor in the job record
    assert files_containing(Path(env["SPARKRUN_CONFIG_DIR"]), GOOD_TOKEN) == []

    ok(env, "stop", "--all", "--cluster", "testbed")
    hub.stats.reset()
    second = run_all(env, recipe, len(hosts))  # the image is on every host now: nothing is pulled or copied
    assert hub.bytes_served() == 0
    assert moved(second["sync"], "model ") == dict.fromkeys(hosts, 0)  # type: ignore[arg-type]
    assert moved(second["sync"], "image ") == dict.fromkeys(hosts, 0)  # type: ignore[arg-type]
    for host in hosts:
        testbed.docker(host, "rmi", image)


def test_without_ssh_between_hosts_the_copy_goes_through_this_machine_and_says_how_to_chain(
    env: dict[str, str], testbed: Testbed, tmp_path: Path, host_state: SetState
) -> None:
    host_state(testbed.hosts[1], mesh=False)  # no key pair, authorizes only this machine: no SSH from or to it
    recipe = write_recipe(tmp_path, "tiny", LLAMA)
    code, report, err = sync_json(env, str(recipe), "--cluster", "testbed")
    assert code == 0, err
    assert "sparkrun setup ssh" in err
    model = next(i for i in report["items"] if i["item"].startswith("model "))
    routes = [h["route"] for h in model["hosts"]]
    assert routes[0] == "downloaded from the Hub"
    assert routes[1:] == [f"from {testbed.hosts[0]} through this machine"] * (len(testbed.hosts) - 1)
    assert all(h["error"] is None for h in model["hosts"])


def test_the_dry_run_shows_what_the_recipe_needs_and_the_sync_steps(
    env: dict[str, str], testbed: Testbed, hub: HubStub, tmp_path: Path
) -> None:
    recipe = write_recipe(tmp_path, "gated-tiny", GATED)
    args = ("run", str(recipe), "--cluster", "testbed", "--tp", "2", "--dry-run", "--json")
    hub.stats.reset()
    cold = json.loads(ok(env, *args).stdout)
    assert hub.stats.requests == []  # a dry-run asks the Hub nothing, even with nothing cached
    assert cold["distribution"]["model"]["known"] is False and cold["distribution"]["memory"]["available"] is False
    assert any("not cached here" in n for n in cold["notes"])
    ok(env, "recipe", "vram", str(recipe), "--tp", "2")  # online: file list, config and headers are cached
    hub.stats.reset()
    dry = json.loads(ok(env, *args).stdout)
    assert hub.stats.requests == []
    needs = dry["distribution"]
    assert needs["model"]["known"] is True and needs["model"]["total_bytes"] > 0
    assert needs["image"]["ref"] == IMAGE and needs["memory"]["fits"] is True
    phases = [s["phase"] for s in dry["steps"]]
    assert phases.index("sync: check") < phases.index("sync: model") < phases.index("start group 0")
    assert all("HF_HUB_OFFLINE=1" in r["docker_argv"] for r in dry["ranks"])
    assert dry["job"] == cold["job"]
