"""The current core honours what the new runtimes ask for: the container names and SSH settings in the Topology, and
`RankSpec.mounts` in the `docker run` line and the launch script."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from sparkrun.errors import RecipeError
from sparkrun.orchestration.hosts import Cluster, Host, HostSelection, SshSettings
from sparkrun.orchestration.launch import Launcher
from sparkrun.orchestration.plan import LaunchRequest, plan_launch
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
    )


def test_trtllm_reaches_the_worker_containers_by_their_real_names() -> None:
    plan = plan_launch(launch_request(TrtllmRuntime(), "10.0.0.11", "10.0.0.12", "10.0.0.13"))
    head, *workers = plan.ranks
    args = head.spec.argv[4 : head.spec.argv.index("--")]
    assert args[2:4] == ("ubuntu", "2222")
    assert args[4:] == ("10.0.0.12", workers[0].container, "10.0.0.13", workers[1].container)
    assert plan.topology.container_names == tuple(r.container for r in plan.ranks)


def test_mounts_reach_the_docker_run_line_and_the_launch_script() -> None:
    plan = plan_launch(launch_request(TrtllmRuntime(), "10.0.0.11", "10.0.0.12"))
    head = plan.ranks[0]
    line = head.docker_run_argv(plan.hf_cache)
    assert line[line.index(f"~/.ssh:{SSH_DIR}:ro") - 1] == "-v"
    script = Launcher._launch_script(Launcher.__new__(Launcher), plan, head)
    assert f"MOUNTS=('~/.ssh:{SSH_DIR}:ro')" in script.text
    assert "MOUNTS=()" in Launcher._launch_script(Launcher.__new__(Launcher), plan, plan.ranks[1]).text


class OddRoles(Runtime):
    name: ClassVar[str] = "odd"

    def defaults(self) -> Mapping[str, Any]:
        return {}

    def build(self, request: ServeRequest, topology: Topology) -> tuple[RankSpec, ...]:
        return tuple(RankSpec(rank, "node", ("engine",), api_port=8000 if rank == 0 else None) for rank in range(2))


def test_a_runtime_with_unconventional_roles_is_refused_with_the_expected_role() -> None:
    with pytest.raises(RecipeError, match="gave rank 0 the role 'node'; expected 'head'"):
        plan_launch(launch_request(OddRoles(), "10.0.0.11", "10.0.0.12"))
