"""The core honours what the new runtimes ask for: the container names and SSH settings in the Topology, and
`RankSpec.mounts` in the rank's `docker run` line (`~/` resolved with the probed home)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from sparkrun.clusters import Cluster, HostSelection
from sparkrun.errors import RecipeError
from sparkrun.hosts import Host, SshSettings
from sparkrun.launch.container import docker_run_argv
from sparkrun.launch.facts import HostFacts
from sparkrun.launch.planner import plan_job
from sparkrun.launch.request import LaunchRequest
from sparkrun.runtimes.base import RankSpec, Runtime, ServeRequest, Topology
from sparkrun.runtimes.trtllm import SSH_DIR, TrtllmRuntime


def launch_request(
    runtime: Runtime, *hosts: str, user: str | None = "ubuntu", port: int | None = 2222
) -> LaunchRequest:
    cluster = Cluster(name="lab", hosts=hosts, ssh=SshSettings(user=user, port=port))
    settings = {"port": 8000, "host": "0.0.0.0", "tensor_parallel": len(hosts)}
    return LaunchRequest(
        recipe_name="trt",
        recipe_source="trt.yaml",
        runtime=runtime,
        request=ServeRequest(model="Qwen/Qwen3-1.7B", image="img:1", settings=settings),
        selection=HostSelection(hosts=tuple(Host(h) for h in hosts), source="--hosts", cluster=cluster),
        nodes=len(hosts),
        tensor_parallel=len(hosts),
    )


def test_trtllm_reaches_the_worker_containers_by_their_real_names() -> None:
    plan = plan_job(launch_request(TrtllmRuntime(), "10.0.0.11", "10.0.0.12", "10.0.0.13"))
    head, *workers = plan.ranks
    args = head.spec.argv[4 : head.spec.argv.index("--")]
    assert args[2:4] == ("ubuntu", "2222")
    assert args[4:] == ("10.0.0.12", workers[0].container.name, "10.0.0.13", workers[1].container.name)
    assert plan.topology.container_names == tuple(r.container.name for r in plan.ranks)


def test_the_ssh_mount_reaches_the_head_docker_run_line_with_the_probed_home() -> None:
    lr = launch_request(TrtllmRuntime(), "10.0.0.11", "10.0.0.12", user=None, port=None)
    dry = plan_job(lr)
    line = docker_run_argv(dry.ranks[0].container)
    assert line[line.index(f"~/.ssh:{SSH_DIR}:ro") - 1] == "-v"
    assert not [a for a in docker_run_argv(dry.ranks[1].container) if SSH_DIR in a]
    assert dry.ranks[0].spec.argv[6:8] == ("", "")  # no SSH user or port: ssh's defaults
    facts = {h: HostFacts(h, home="/home/u") for h in ("10.0.0.11", "10.0.0.12")}
    real = plan_job(lr, facts)
    assert f"/home/u/.ssh:{SSH_DIR}:ro" in docker_run_argv(real.ranks[0].container)


class OddRoles(Runtime):
    name: ClassVar[str] = "odd"

    def defaults(self) -> Mapping[str, Any]:
        return {}

    def build(self, request: ServeRequest, topology: Topology) -> tuple[RankSpec, ...]:
        return tuple(RankSpec(rank, "node", ("engine",), api_port=8000 if rank == 0 else None) for rank in range(2))


def test_a_runtime_with_unconventional_roles_is_refused_with_the_expected_role() -> None:
    with pytest.raises(RecipeError, match="gave rank 0 the role 'node'; expected 'head'"):
        plan_job(launch_request(OddRoles(), "10.0.0.11", "10.0.0.12"))
