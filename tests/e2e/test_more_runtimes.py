"""trtllm, modular-max, atlas and tokenary on the test cluster: each reaches ready solo; trtllm (mpirun in the head
container, ranks started in the worker containers over the hosts' SSH), atlas and tokenary across two hosts; every
job stops cleanly, leaving no container."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.cli import IMAGE, ok, run_json, sparkrun, sparkrun_containers, status_json
from testbed.harness import Testbed

pytestmark = pytest.mark.e2e

RECIPES = Path(__file__).parent / "recipes"
SOLO = {
    "trtllm": ("trtllm-qwen3-1.7b.yaml", "trtllm-serve"),
    "modular-max": ("max-qwen3-1.7b.yaml", "max"),
    "atlas": ("atlas-qwen3-1.7b.yaml", "spark"),
    "tokenary": ("tokenary-qwen3-1.7b.yaml", "tokenary"),
}


@pytest.fixture
def env(sparkrun_env: dict[str, str], testbed: Testbed) -> Iterator[dict[str, str]]:
    yield sparkrun_env
    sparkrun(sparkrun_env, "stop", "--all", "--cluster", "testbed")


def container_command(testbed: Testbed, host: str, name: str) -> list[str]:
    out = testbed.docker(host, "inspect", "-f", "{{json .Config.Entrypoint}} {{json .Config.Cmd}}", name)
    entrypoint, _, cmd = out.stdout.strip().partition(" ")
    return [*json.loads(entrypoint), *json.loads(cmd)]


def job_containers(env: dict[str, str], job: str) -> list[dict[str, object]]:
    status = status_json(env, "--cluster", "testbed")
    (entry,) = [j for j in status["jobs"] if j["job"] == job]
    assert entry["state"] == "running", entry
    containers: list[dict[str, object]] = entry["containers"]
    return containers


@pytest.mark.parametrize("runtime", sorted(SOLO))
def test_solo_run_reaches_ready_and_stops_cleanly(runtime: str, env: dict[str, str], testbed: Testbed) -> None:
    recipe, program = SOLO[runtime]
    out = run_json(env, str(RECIPES / recipe), "--cluster", "testbed", "--tp", "1", "--image", IMAGE)
    assert out["ready"] is True
    (container,) = job_containers(env, str(out["job"]))
    assert container["role"] == "solo"
    argv = container_command(testbed, str(container["host"]), str(container["name"]))
    assert argv[0] == program, argv  # the engine is the container's main process
    models = json.loads(testbed.wait_http(f"{out['endpoint']}/models"))
    assert models["data"], models
    ok(env, "stop", str(out["job"]), "--cluster", "testbed")
    assert sparkrun_containers(testbed) == {}


@pytest.mark.parametrize("runtime", ["trtllm", "atlas", "tokenary"])
def test_two_host_run_reaches_ready_and_stops_cleanly(runtime: str, env: dict[str, str], testbed: Testbed) -> None:
    recipe, _ = SOLO[runtime]
    out = run_json(env, str(RECIPES / recipe), "--cluster", "testbed", "--tp", "2", "--image", IMAGE)
    assert out["ready"] is True
    containers = job_containers(env, str(out["job"]))
    assert [(c["rank"], c["role"], c["state"]) for c in containers] == [
        (0, "head", "running"),
        (1, "worker", "running"),
    ]
    assert len({c["host"] for c in containers}) == 2
    models = json.loads(testbed.wait_http(f"{out['endpoint']}/models"))
    assert models["data"], models
    head_logs = ok(env, "logs", str(out["job"]), "--cluster", "testbed", "-n", "200").stdout
    if runtime == "trtllm":
        # mpirun on the head started rank 1 inside the worker container, through the worker host's SSH
        assert "[RANK 1] MPI worker ready (world size 2)" in head_logs, head_logs
        worker = containers[1]
        worker_logs = testbed.docker(str(worker["host"]), "logs", str(worker["name"])).stdout
        assert "rank 1: started by mpirun" in worker_logs, worker_logs
    else:
        assert "rendezvous complete: 2 ranks" in head_logs, head_logs
    ok(env, "stop", str(out["job"]), "--cluster", "testbed")
    assert sparkrun_containers(testbed) == {}


def test_modular_max_refuses_two_hosts_before_touching_any(env: dict[str, str], testbed: Testbed) -> None:
    r = sparkrun(
        env, "run", str(RECIPES / "max-qwen3-1.7b.yaml"), "--cluster", "testbed", "--tp", "2", "--image", IMAGE
    )
    assert r.returncode == 3, r.stderr
    assert "modular-max runs on one host with one GPU" in r.stderr
    assert "Traceback" not in r.stderr
    assert sparkrun_containers(testbed) == {}
