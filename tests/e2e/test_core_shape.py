"""The core's shape, proven on the test cluster: what the dry-run shows is what runs (job id and container argv, even
when the image falls back to a prebuilt one), the commands `run` prints work exactly as printed, and the transport
carries 100 MB host to host byte for byte without holding it in Python."""

from __future__ import annotations

import json
import shlex
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.cli import IMAGE, ok, sparkrun, sparkrun_containers
from e2e.mesh import mesh_root
from sparkrun.hosts import Host
from sparkrun.shell import Script
from sparkrun.transport.base import Direct
from sparkrun.transport.ssh import SshTransport
from testbed.harness import Testbed

pytestmark = pytest.mark.e2e

FALLBACK = "ghcr.io/spark-arena/dgx-vllm-eugr-nightly:latest"
V1_RECIPE = """\
recipe_version: "1"
name: eugr-fallback-test
model: Qwen/Qwen3-1.7B
container: vllm-node
defaults:
  port: 8000
  host: 0.0.0.0
  tensor_parallel: 1
  served_model_name: eugr-test
command: |
  vllm serve Qwen/Qwen3-1.7B --served-model-name {served_model_name} -tp {tensor_parallel} --host {host} --port {port}
"""


@pytest.fixture
def env(sparkrun_env: dict[str, str], testbed: Testbed) -> Iterator[dict[str, str]]:
    yield sparkrun_env
    sparkrun(sparkrun_env, "stop", "--all", "--cluster", "testbed")


def test_a_fallback_image_job_runs_exactly_what_its_dry_run_showed(
    env: dict[str, str], testbed: Testbed, tmp_path: Path
) -> None:
    head = testbed.hosts[0]
    testbed.docker(head, "tag", IMAGE, FALLBACK)  # the published twin is there; eugr's local `vllm-node` is not
    try:
        recipe = tmp_path / "eugr-fallback-test.yaml"
        recipe.write_text(V1_RECIPE)
        args = (str(recipe), "--cluster", "testbed", "-H", head)
        dry = json.loads(ok(env, "run", *args, "--dry-run", "--json").stdout)
        out = json.loads(ok(env, "run", *args, "--json", "--no-follow").stdout)
        assert out["job"] == dry["job"]
        (rank,) = dry["ranks"]
        (info,) = json.loads(testbed.docker(head, "inspect", rank["container"]).stdout)
        assert [*info["Config"]["Entrypoint"], *info["Config"]["Cmd"]] == rank["argv"]
        assert info["Config"]["Image"] == "vllm-node" == dry["image"]
        assert rank["labels"].items() <= info["Config"]["Labels"].items()
        assert set(rank["docker_argv"]) >= {"--init", "--network", "host", "--gpus", "all"}
        again = json.loads(ok(env, "run", *args, "--json", "--no-follow", "--ensure").stdout)
        assert again["job"] == dry["job"] and again["reused"] is True
    finally:
        testbed.docker(head, "rmi", "-f", "vllm-node", FALLBACK, check=False)


def test_the_commands_run_prints_work_exactly_as_printed(env: dict[str, str], testbed: Testbed) -> None:
    r = ok(env, "run", "qwen3-1.7b-vllm", "--cluster", "testbed", "--image", IMAGE, "--no-follow")
    line = next(x for x in r.stdout.splitlines() if x.startswith("logs: "))
    logs_cmd, stop_cmd = (part.split(": ", 1)[1].strip() for part in line.split("    "))
    assert logs_cmd.startswith("sparkrun logs ") and stop_cmd.startswith("sparkrun stop ")
    job = stop_cmd.split()[-1]
    logs = ok(env, *shlex.split(logs_cmd)[1:])
    assert "Uvicorn running" in logs.stdout or "Application startup complete" in logs.stdout, logs.stdout[-500:]
    status = json.loads(ok(env, "status", "--json").stdout)  # no hosts given: the recorded job's hosts
    assert [j["job"] for j in status["jobs"]] == [job]
    ok(env, *shlex.split(stop_cmd)[1:])
    assert sparkrun_containers(testbed) == {}


def test_a_failed_docker_run_names_dockers_own_error(env: dict[str, str], testbed: Testbed) -> None:
    ok(env, "cluster", "update", "testbed", "--ulimit", "nofile=lots")
    r = sparkrun(env, "run", "qwen3-1.7b-vllm", "--cluster", "testbed", "--image", IMAGE, "--no-follow")
    assert r.returncode == 4, r.stderr
    error = next(x for x in r.stderr.splitlines() if x.startswith("error:"))
    assert ": docker-run: " in error and "nofile=lots" in error, error
    assert "--help" not in error
    assert sparkrun_containers(testbed) == {}


@pytest.mark.parametrize("direct", [False, True], ids=["through-control", "host-to-host"])
def test_100_mb_piped_between_hosts_arrive_byte_identical(
    transport: SshTransport, testbed: Testbed, direct: bool
) -> None:
    src, dst = testbed.hosts[0], testbed.hosts[1]
    testbed.exec(src, "head -c 100000000 /dev/urandom > /tmp/blob")
    want = testbed.exec(src, "sha256sum /tmp/blob").stdout.split()[0]
    if direct:
        mesh_root(testbed, src, dst)
    source = Script("send", "set -o pipefail\ncat /tmp/blob\n")
    sink = Script("receive", "set -o pipefail\ncat > /tmp/received && sha256sum /tmp/received\n")
    tracemalloc.start()
    try:
        result = transport.pipe(
            (Host(src), source), (Host(dst), sink), direct=Direct(dst) if direct else None, timeout=300
        )
        _size, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.ok, (result.source, result.sink)
    assert result.sink.stdout.split()[0] == want
    assert peak < 8 * 1024 * 1024, f"python held {peak} bytes while piping 100 MB"
    testbed.exec(dst, "rm -f /tmp/received")
    testbed.exec(src, "rm -f /tmp/blob")


def test_a_step_that_runs_out_of_time_is_ended_on_the_host(transport: SshTransport, testbed: Testbed) -> None:
    host = testbed.hosts[0]
    result = transport.run(Host(host), Script("slow", "sleep 300; touch /tmp/too-late\n"), timeout=2)
    assert result.timed_out == 2.0 and result.failure()[0] == "slow"
    assert "sleep 300" not in testbed.exec(host, "ps -eo args").stdout
