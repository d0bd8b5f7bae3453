"""Shared helpers for the runtime tests: topologies, a stock request, the engines' real flag lists.

Imported by name (`from runtime_cases import …`): pytest puts this test directory on sys.path.

`data/` is a symlink to the stand-in engines' flag lists (`scripts/testbed/engine/standin/flags/`, one copy for the
stand-ins and these tests): the real command-line flags of vllm serve, sglang, llama-server, rpc-server, ray start,
trtllm-serve, mpirun, max serve, atlas `spark serve` and tokenary, each file's header naming its source and version
(README.md there says how they were extracted). The tests never read anything outside the repository.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from sparkrun.runtimes.base import ServeRequest, Topology

DATA = Path(__file__).parent / "data"
ADDRESSES = ("10.0.0.11", "10.0.0.12", "10.0.0.13", "10.0.0.14")


def container_names(nodes: int, job: str = "0123456789ab") -> tuple[str, ...]:
    """The names the core gives the containers of a `nodes`-rank job (orchestration.jobs.container_name)."""
    if nodes == 1:
        return (f"sparkrun_{job}_solo",)
    return (f"sparkrun_{job}_head", *(f"sparkrun_{job}_worker{rank}" for rank in range(1, nodes)))


def topology(
    nodes: int, *, tp: int | None = None, pp: int = 1, ssh_user: str | None = None, ssh_port: int | None = None
) -> Topology:
    """`nodes` hosts spark1… at 10.0.0.11…; tensor parallel defaults to nodes / pp."""
    return Topology(
        hosts=tuple(f"spark{i + 1}" for i in range(nodes)),
        addresses=ADDRESSES[:nodes] if nodes > 1 else ("127.0.0.1",),
        tensor_parallel=tp if tp is not None else nodes // pp,
        pipeline_parallel=pp,
        container_names=container_names(nodes),
        ssh_user=ssh_user,
        ssh_port=ssh_port,
    )


def request(
    settings: Mapping[str, Any] | None = None,
    *,
    model: str = "Qwen/Qwen3-1.7B",
    command: tuple[str, ...] | None = None,
    env: Mapping[str, str] | None = None,
    runtime_config: Mapping[str, Any] | None = None,
    extra_args: tuple[str, ...] = (),
) -> ServeRequest:
    base: dict[str, Any] = {"port": 8000, "host": "0.0.0.0", "gpu_memory_utilization": 0.8, "max_model_len": 8192}
    base.update(settings or {})
    return ServeRequest(
        model=model,
        image="example/image:1",
        settings=base,
        command=command,
        env=dict(env or {}),
        runtime_config=dict(runtime_config or {}),
        extra_args=extra_args,
    )


def rank_vars(rank: int, nodes: int, *, vllm: bool = False) -> dict[str, str]:
    """The per-rank variables every runtime sets, for rank `rank` of `topology(nodes)`."""
    address = topology(nodes).addresses[rank]
    env = {"NODE_IP": address}
    if vllm:
        env["VLLM_HOST_IP"] = address
    env.update(
        SPARKRUN_HEAD_IP=topology(nodes).addresses[0], SPARKRUN_NODE_RANK=str(rank), SPARKRUN_NUM_NODES=str(nodes)
    )
    return env


@cache
def engine_flags(name: str) -> frozenset[str]:
    """Every spelling (long form and aliases) in data/<name>.txt."""
    flags: set[str] = set()
    for line in (DATA / f"{name}.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        *names, _kind = line.split()
        flags.update(names)
    return frozenset(flags)
