"""Multi-node launches on the test cluster: every runtime reaches ready across hosts, a dying rank takes the whole
job down, and third-party runtime plugins run jobs too."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from e2e.cli import IMAGE, ok, run_json, sparkrun, sparkrun_containers, status_json
from testbed.harness import Testbed

pytestmark = pytest.mark.e2e


@pytest.fixture
def env(sparkrun_env: dict[str, str], testbed: Testbed) -> Iterator[dict[str, str]]:
    yield sparkrun_env
    sparkrun(sparkrun_env, "stop", "--all", "--cluster", "testbed")


def assert_job_runs_everywhere(env: dict[str, str], testbed: Testbed, out: dict[str, object], nodes: int) -> None:
    assert out["ready"] is True
    hosts = out["hosts"]
    assert isinstance(hosts, list) and len(hosts) == nodes
    status = status_json(env, "--cluster", "testbed")
    (job,) = [j for j in status["jobs"] if j["job"] == out["job"]]
    assert job["state"] == "running"
    assert sorted(c["host"] for c in job["containers"]) == sorted(hosts)
    assert [c["rank"] for c in job["containers"]] == list(range(nodes))
    models = json.loads(testbed.wait_http(f"{out['endpoint']}/models"))
    assert models["data"], models


@pytest.mark.parametrize(
    "recipe",
    ["qwen3-1.7b-vllm", "qwen3-1.7b-vllm-ray", "qwen3-1.7b-sglang", "qwen3-1.7b-llama-cpp"],
)
def test_two_host_job_reaches_ready_and_stop_removes_every_rank(
    recipe: str, env: dict[str, str], testbed: Testbed
) -> None:
    out = run_json(env, recipe, "--cluster", "testbed", "--tp", "2", "--image", IMAGE)
    assert_job_runs_everywhere(env, testbed, out, 2)
    ok(env, "stop", str(out["job"]), "--cluster", "testbed")
    assert sparkrun_containers(testbed) == {}


@pytest.mark.parametrize("recipe", ["qwen3-1.7b-vllm", "qwen3-1.7b-vllm-ray"])
def test_four_host_job_reaches_ready(recipe: str, env: dict[str, str], testbed: Testbed) -> None:
    if len(testbed.hosts) < 4:
        pytest.skip("needs a 4-host test cluster")
    out = run_json(env, recipe, "--cluster", "testbed", "--tp", "4", "--image", IMAGE)
    assert_job_runs_everywhere(env, testbed, out, 4)
    ok(env, "stop", str(out["job"]), "--cluster", "testbed")
    assert sparkrun_containers(testbed) == {}


def test_solo_runs_for_every_runtime(env: dict[str, str], testbed: Testbed) -> None:
    for recipe in ("qwen3-1.7b-vllm-ray", "qwen3-1.7b-sglang", "qwen3-1.7b-llama-cpp"):
        out = run_json(env, recipe, "--cluster", "testbed", "--tp", "1", "--image", IMAGE)
        assert out["ready"] is True
        ok(env, "stop", str(out["job"]), "--cluster", "testbed")
    assert sparkrun_containers(testbed) == {}


def test_a_worker_killed_during_startup_tears_the_whole_job_down(env: dict[str, str], testbed: Testbed) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sparkrun", "run", "qwen3-1.7b-vllm", "--cluster", "testbed", "--tp", "2",
         "--image", IMAGE, "--no-follow", "-e", "STANDIN_STARTUP_SECONDS=60"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    worker = testbed.hosts[1]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and worker not in sparkrun_containers(testbed):
        time.sleep(0.2)
    (name,) = sparkrun_containers(testbed)[worker]
    time.sleep(1)
    testbed.docker(worker, "kill", name)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 5, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors and errors[0].startswith(f"error: {testbed.hosts[0]}: readiness"), err
    assert "  | " in err  # the head's log tail says why
    assert sparkrun_containers(testbed) == {}


def test_interface_env_comes_from_the_hosts_fake_infiniband(env: dict[str, str], testbed: Testbed) -> None:
    head, worker = testbed.hosts[:2]
    testbed.ib(head, True)
    testbed.ib(worker, True)
    try:
        out = run_json(env, "qwen3-1.7b-vllm", "--cluster", "testbed", "--tp", "2", "--image", IMAGE)
        for host in (head, worker):
            (name,) = sparkrun_containers(testbed)[host]
            inspect = json.loads(testbed.docker(host, "inspect", name).stdout)[0]
            container_env = dict(e.split("=", 1) for e in inspect["Config"]["Env"])
            assert container_env["NCCL_IB_DISABLE"] == "0"
            assert container_env["NCCL_IB_HCA"].startswith("rocep1s0f0")
            assert container_env["NCCL_SOCKET_IFNAME"].startswith("eth0")
            assert container_env["NODE_IP"] == host
        ok(env, "stop", str(out["job"]), "--cluster", "testbed")
    finally:
        testbed.ib(head, False)
        testbed.ib(worker, False)


def test_a_third_party_runtime_plugin_runs_a_job_and_a_broken_one_is_reported(
    env: dict[str, str], testbed: Testbed, tmp_path: object
) -> None:
    listed = json.loads(ok(env, "plugins", "list", "--json").stdout)
    by_name = {p["name"]: p for p in listed}
    assert by_name["example-vllm"]["ok"] is True
    assert by_name["broken-runtime"]["ok"] is False and by_name["broken-runtime"]["error"]
    assert by_name["vllm-distributed"]["ok"] is True  # the built-ins are unaffected

    from pathlib import Path

    recipe = Path(str(tmp_path)) / "example.yaml"
    recipe.write_text('recipe_version: "2"\nmodel: Qwen/Qwen3-1.7B\nruntime: example-vllm\ndefaults:\n  port: 8000\n')
    out = run_json(env, str(recipe), "--cluster", "testbed", "--image", IMAGE)
    assert out["ready"] is True and out["runtime"] == "example-vllm"
    ok(env, "stop", str(out["job"]), "--cluster", "testbed")
