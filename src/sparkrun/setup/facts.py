"""What `setup_check.sh` found on a host, as data: the facts every setup check and planner decides from.

One `HostFacts` per host. A host the check could not reach has only `error` (the transport's cause, e.g.
`SSH host key unknown (not in known_hosts)`); everything else is then unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sparkrun.hosts import Host
from sparkrun.transport.base import Result

MESH_OUTCOMES = ("ok", "hostkey", "auth", "unreachable", "error")


@dataclass(frozen=True)
class Disk:
    size_kib: int
    used_kib: int
    avail_kib: int
    fstype: str
    mount: str

    @property
    def used_percent(self) -> float:
        """As `df` computes Use%: of the space not reserved for root."""
        room = self.used_kib + self.avail_kib
        return 100.0 * self.used_kib / room if room else 0.0


@dataclass(frozen=True)
class IbPort:
    """One RDMA port (e.g. a CX7 port) and its network interface."""

    device: str
    port: str
    state: str  # ACTIVE, DOWN, ...
    link_layer: str  # Ethernet (RoCE) or InfiniBand
    netdev: str  # "-" when the port has none
    mtu: int
    operstate: str  # up, down, ...
    addresses: tuple[str, ...]  # IPv4 "a.b.c.d/prefix"

    @property
    def usable(self) -> bool:
        """Worth configuring: it has a network interface and its link is up."""
        return self.netdev != "-" and (self.state == "ACTIVE" or self.operstate == "up")


@dataclass(frozen=True)
class PeerProbe:
    peer: str
    outcome: str  # one of MESH_OUTCOMES
    detail: str


@dataclass(frozen=True)
class HostFacts:
    host: Host
    error: str | None = None  # the check did not run there: why
    user: str = ""
    uid: int = -1
    gid: int = -1
    home: str = ""
    hostname: str = ""
    addresses: tuple[str, ...] = ()  # global IPv4 "a.b.c.d/prefix"
    groups: tuple[str, ...] = ()
    sudo: str = "unknown"  # root, nopasswd, password, missing
    sudo_detail: str = ""
    tools: Mapping[str, bool] = field(default_factory=dict)
    ntp: str = "unknown"  # yes, no, unknown
    docker: str = "unknown"  # ok, denied, down, missing
    docker_detail: str = ""
    docker_member: bool = False  # the user is in group docker (in /etc/group, whatever the current session has)
    gpu_host: str = ""
    gpu_container: str = "skip"  # ok, fail, skip
    gpu_detail: str = ""
    cache_path: str = ""
    cache_exists: bool = False
    cache_writable: bool = False
    cache_foreign: str = ""  # first entry in the cache not owned by the user
    disk: Disk | None = None
    clock: float | None = None  # the host's time when the check started there
    window: tuple[float, float] = (0.0, 0.0)  # the control machine's time when it sent the check and got the answer
    ib: tuple[IbPort, ...] = ()
    cx7_file: bool = False  # the netplan file `setup cx7` writes exists
    earlyoom_installed: bool = False
    earlyoom_active: bool = False
    earlyoom_args: str = ""
    host_keys: tuple[str, ...] = ()  # "type base64" served by this host's sshd
    user_key: str | None = None  # the user's public key line
    mesh: tuple[PeerProbe, ...] = ()

    @property
    def reached(self) -> bool:
        return self.error is None

    @property
    def address(self) -> str:
        return self.host.address

    @property
    def skew(self) -> float | None:
        """Seconds the host's clock is off, beyond what the round trip leaves open (0 when within it)."""
        if self.clock is None:
            return None
        sent, answered = self.window
        if self.clock < sent:
            return self.clock - sent
        if self.clock > answered:
            return self.clock - answered
        return 0.0

    def has(self, tool: str) -> bool:
        return bool(self.tools.get(tool))

    def ipv4(self) -> list[str]:
        """The host's global IPv4 addresses (CX7 ones included), without prefix."""
        return [a.split("/")[0] for a in self.addresses]


def _int(text: str, default: int = -1) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def _split(value: str, n: int) -> list[str]:
    parts = value.split(" ", n - 1)
    return parts + [""] * (n - len(parts))


def _ib_port(value: str) -> IbPort:
    dev, port, state, layer, netdev, mtu, oper, addrs = _split(value, 8)
    addresses = tuple(a for a in addrs.split(",") if a and a != "-")
    return IbPort(dev, port, state.replace("_", " "), layer.replace("_", " "), netdev, _int(mtu, 0), oper, addresses)


def _field(data: dict[str, object], key: str, value: str) -> None:  # noqa: PLR0912 - one branch per event
    if key == "user":
        user, uid, gid, home = _split(value, 4)
        data.update(user=user, uid=_int(uid), gid=_int(gid), home=home)
    elif key == "sudo":
        mode, detail = _split(value, 2)
        data.update(sudo=mode, sudo_detail=detail)
    elif key == "docker":
        state, detail = _split(value, 2)
        data.update(docker=state, docker_detail=detail)
    elif key == "gpu_container":
        state, detail = _split(value, 2)
        data.update(gpu_container=state, gpu_detail=detail)
    elif key == "cache":
        state, writable, path = _split(value, 3)
        data.update(cache_exists=state == "exists", cache_writable=writable == "writable", cache_path=path)
    elif key == "disk":
        size, used, avail, fstype, mount = _split(value, 5)
        data["disk"] = Disk(_int(size, 0), _int(used, 0), _int(avail, 0), fstype, mount)
    elif key == "earlyoom":
        installed, active, args = _split(value, 3)
        data.update(earlyoom_installed=installed == "installed", earlyoom_active=active == "active")
        data["earlyoom_args"] = args
    elif key == "clock":
        try:
            data["clock"] = float(value)
        except ValueError:
            data["clock"] = None
    else:
        simple = {"hostname": "hostname", "ntp": "ntp", "gpu_host": "gpu_host", "cache_foreign": "cache_foreign"}
        flags = {"docker_member": "docker_member", "cx7_file": "cx7_file"}
        if key in simple:
            data[simple[key]] = value
        elif key in flags:
            data[flags[key]] = value == "yes"
        elif key == "groups":
            data["groups"] = tuple(value.split())


def parse_check(host: Host, result: Result, window: tuple[float, float]) -> HostFacts:
    """`setup_check.sh`'s answer -> facts; a run that did not reach the host -> facts with only `error`."""
    if not result.ok:
        return HostFacts(host, error=result.failure()[1])
    data: dict[str, object] = {"window": window}
    tools: dict[str, bool] = {}
    lists: dict[str, list[object]] = {"addresses": [], "ib": [], "host_keys": [], "mesh": []}
    for key, value in result.output.events:
        if key == "tool":
            name, have = _split(value, 2)
            tools[name] = have == "yes"
        elif key == "addr":
            lists["addresses"].append(value.split(" ")[0])
        elif key == "ib":
            lists["ib"].append(_ib_port(value))
        elif key == "hostkey":
            lists["host_keys"].append(value.strip())
        elif key == "mesh":
            peer, outcome, detail = _split(value, 3)
            lists["mesh"].append(PeerProbe(peer, outcome if outcome in MESH_OUTCOMES else "error", detail))
        elif key == "userkey":
            data["user_key"] = value.strip() or None
        else:
            _field(data, key, value)
    return HostFacts(host, tools=tools, **{k: tuple(v) for k, v in lists.items()}, **data)  # type: ignore[arg-type]
