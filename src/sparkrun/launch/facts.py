"""Facts about a host, from one run of `probe.sh` per host before anything changes: docker, images, free ports,
GPU, disk, the SSH user's home, the address towards a peer, this job's containers, and (multi-node) the network
interface env that `ib_detect.sh` finds for NCCL/UCX/GLOO.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sparkrun.runtimes.network import ib_container_env, parse_ib_detect_output
from sparkrun.transport.protocol import Output


@dataclass(frozen=True)
class HostFacts:
    host: str
    docker: str = "unknown"  # "ok", "missing", "unreachable"
    docker_detail: str = ""
    images: Mapping[str, str | None] = field(default_factory=dict)  # image -> id (None: absent)
    ports_busy: frozenset[int] = frozenset()
    gpu_count: int = 0
    gpu_name: str = ""
    disk_free_kb: int | None = None
    home: str = ""
    user: str = ""  # the SSH user's name on the host
    address: str | None = None  # this host's source address towards its peer (the head, or worker 1 for the head)
    arch: str = ""
    has_curl: bool = False
    job_containers: Mapping[str, str] = field(default_factory=dict)  # name -> state
    ib_env: Mapping[str, str] = field(default_factory=dict)  # detected NCCL/UCX/GLOO env (container env)
    ib_error: str | None = None  # ib_detect printed something unexpected
    # port -> "JOB (RECIPE, STATE)": another job's API container here (head or solo, not exited) holds that port
    port_holders: Mapping[int, str] = field(default_factory=dict)

    def has_image(self, image: str) -> bool:
        return self.images.get(image) is not None


def _ib(out: Output) -> tuple[dict[str, str], str | None]:
    lines = out.all("ib_env")
    if not lines:
        return {}, None
    try:
        return ib_container_env(parse_ib_detect_output("\n".join(lines))), None
    except ValueError as exc:
        return {}, str(exc)


HOLDING_STATES = {"running", "created", "restarting", "paused"}


def _port_holders(out: Output) -> dict[int, str]:
    holders: dict[int, str] = {}
    launching = set(out.all("lease"))
    for item in out.all("job"):
        job, port, state, role, *recipe = item.split(" ")
        if port.isdigit() and role in {"head", "solo"} and state in HOLDING_STATES:
            shown = "starting" if job in launching else state
            holders.setdefault(int(port), f"{job} ({' '.join(recipe) or '?'}, {shown})")
    return holders


def parse_facts(host: str, out: Output) -> HostFacts:
    docker, _, detail = (out.last("docker") or "unknown").partition(" ")
    images: dict[str, str | None] = {}
    for item in out.all("image"):
        name, _, ident = item.rpartition(" ")
        images[name] = None if ident in {"", "-"} else ident
    busy = {int(p) for p, _, state in (i.partition(" ") for i in out.all("port")) if state == "busy" and p.isdigit()}
    gpu_count, _, gpu_name = (out.last("gpu") or "0 none").partition(" ")
    disk = out.last("disk")
    addr = out.last("addr")
    containers = dict(item.partition(" ")[::2] for item in out.all("container"))
    ib_env, ib_error = _ib(out)
    return HostFacts(
        host=host,
        docker=docker,
        docker_detail=detail,
        images=images,
        ports_busy=frozenset(busy),
        gpu_count=int(gpu_count) if gpu_count.isdigit() else 0,
        gpu_name=gpu_name if gpu_name != "none" else "",
        disk_free_kb=int(disk) if disk and disk.isdigit() else None,
        home=out.last("home") or "",
        user=out.last("user") or "",
        address=addr if addr and addr != "-" else None,
        arch=out.last("arch") or "",
        has_curl=out.last("curl") == "yes",
        job_containers=containers,
        ib_env=ib_env,
        ib_error=ib_error,
        port_holders=_port_holders(out),
    )
