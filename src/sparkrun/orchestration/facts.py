"""Facts about a host, parsed from one run of `probe.sh`."""

from __future__ import annotations

from dataclasses import dataclass, field

from sparkrun.orchestration.protocol import Output


@dataclass(frozen=True)
class HostFacts:
    host: str
    docker: str = "unknown"  # "ok", "missing", "unreachable"
    docker_detail: str = ""
    images: dict[str, str | None] = field(default_factory=dict)  # image -> id (None: absent)
    ports_busy: frozenset[int] = frozenset()
    gpu_count: int = 0
    gpu_name: str = ""
    disk_free_kb: int | None = None
    home: str = ""
    address: str | None = None  # this host's source address towards its peer (the head, or worker 1 for the head)
    arch: str = ""
    has_curl: bool = False
    job_containers: dict[str, str] = field(default_factory=dict)  # name -> state

    def has_image(self, image: str) -> bool:
        return self.images.get(image) is not None


def parse_facts(host: str, out: Output) -> HostFacts:
    docker, _, detail = (out.last("docker") or "unknown").partition(" ")
    images: dict[str, str | None] = {}
    for item in out.all("image"):
        name, _, ident = item.rpartition(" ")
        images[name] = None if ident in {"", "-"} else ident
    busy = set()
    for item in out.all("port"):
        port, _, state = item.partition(" ")
        if state == "busy" and port.isdigit():
            busy.add(int(port))
    gpu_count, _, gpu_name = (out.last("gpu") or "0 none").partition(" ")
    disk = out.last("disk")
    addr = out.last("addr")
    containers = {}
    for item in out.all("container"):
        name, _, state = item.partition(" ")
        containers[name] = state
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
        address=addr if addr and addr != "-" else None,
        arch=out.last("arch") or "",
        has_curl=out.last("curl") == "yes",
        job_containers=containers,
    )
