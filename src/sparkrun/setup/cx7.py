"""`setup cx7`: an IPv4 address and MTU 9000 on each host's CX7 (RDMA) interfaces, kept across reboots by the host's
own network tool (a netplan file, or a NetworkManager connection where there is no netplan).

Interface k of a host (its usable RDMA netdevs in name order, or `--interfaces`) gets an address in subnet k (the
`--subnet`s in order; without them, the subnet the other hosts already use on that interface, when they agree).
Host i of the cluster gets the i-th address of the subnet unless another host has it; an interface that already has
an address in its subnet keeps it, so a second run changes nothing.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence

from sparkrun.core.plan import Plan, Step
from sparkrun.errors import HostError
from sparkrun.setup.facts import HostFacts
from sparkrun.setup.options import CX7_NETPLAN_FILE, SetupOptions, parse_subnet
from sparkrun.setup.sudo import root_step

_NETDEV_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")
Assignment = tuple[str, str]  # (interface, "address/prefix")


def interfaces_of(facts: HostFacts, wanted: Sequence[str] = ()) -> list[str]:
    """The CX7 interfaces to configure on a host: `wanted`, else every usable RDMA netdev, by name."""
    if wanted:
        return list(wanted)
    return sorted({p.netdev for p in facts.ib if p.usable})


def _addresses(facts: HostFacts, netdev: str) -> list[ipaddress.IPv4Interface]:
    return [ipaddress.IPv4Interface(a) for p in facts.ib if p.netdev == netdev for a in p.addresses]


def _mtu(facts: HostFacts, netdev: str) -> int:
    return next((p.mtu for p in facts.ib if p.netdev == netdev), 0)


def suggest_subnets(facts: Mapping[str, HostFacts], wanted: Sequence[str] = ()) -> tuple[str, ...]:
    """The subnet each interface position already uses on the hosts that have addresses there, when they agree and
    leave room for more hosts; () when any position has none."""
    nets: list[set[ipaddress.IPv4Network]] = []
    for f in facts.values():
        if not f.reached:
            continue
        for k, netdev in enumerate(interfaces_of(f, wanted)):
            while len(nets) <= k:
                nets.append(set())
            nets[k].update(a.network for a in _addresses(f, netdev) if a.network.prefixlen <= 30)
    if not nets or any(len(n) != 1 for n in nets):
        return ()
    return tuple(str(next(iter(n))) for n in nets)


def netplan_yaml(assignments: Sequence[Assignment], mtu: int) -> str:
    lines = ["# written by `sparkrun setup cx7`: the CX7 (RDMA) interfaces", "network:", "  version: 2", "  ethernets:"]
    for netdev, address in assignments:
        lines += [f"    {netdev}:", "      dhcp4: false", f"      addresses: [{address}]", f"      mtu: {mtu}"]
    return "\n".join(lines) + "\n"


class _Numbering:
    """Hands out addresses in a subnet: host i gets the i-th one unless another host already has it."""

    def __init__(self, facts: Mapping[str, HostFacts]) -> None:
        self.taken = {ip for f in facts.values() for ip in f.ipv4()}
        for f in facts.values():
            self.taken |= {str(ipaddress.IPv4Interface(a).ip) for p in f.ib for a in p.addresses}

    def take(self, net: ipaddress.IPv4Network, index: int) -> str | None:
        hosts = list(net.hosts())
        for candidate in hosts[index:] + hosts[:index]:
            if str(candidate) not in self.taken:
                self.taken.add(str(candidate))
                return f"{candidate}/{net.prefixlen}"
        return None


def _assign(
    f: HostFacts, index: int, subnets: Sequence[str], options: SetupOptions, numbering: _Numbering
) -> tuple[list[Assignment], HostError | None]:
    out: list[Assignment] = []
    for k, netdev in enumerate(interfaces_of(f, options.interfaces)):
        if not _NETDEV_RE.match(netdev):
            return [], HostError(f.address, "cx7", f"invalid interface name {netdev!r}")
        have = _addresses(f, netdev)
        net = parse_subnet(subnets[k]) if k < len(subnets) else None
        inside = [a for a in have if net is not None and a.ip in net]
        if inside:
            out.append((netdev, f"{inside[0].ip}/{net.prefixlen if net else inside[0].network.prefixlen}"))
        elif have and (net is None or not options.force):
            if net is not None:
                hint = "pass --force to give it an address in the subnet"
                return [], HostError(f.address, "cx7", f"{netdev} has {have[0]}, outside {net}", hint=hint)
            out.append((netdev, str(have[0])))
        elif net is None:
            hint = "pass --subnet CIDR (one per CX7 interface), e.g. --subnet 192.168.177.0/24"
            return [], HostError(f.address, "cx7", f"{netdev} has no IPv4 address and no subnet was given", hint=hint)
        else:
            address = numbering.take(net, index)
            if address is None:
                return [], HostError(f.address, "cx7", f"no free address left in {net} for {netdev}")
            out.append((netdev, address))
    return out, None


def _done(f: HostFacts, assignments: Sequence[Assignment], mtu: int) -> bool:
    return f.cx7_file and all(
        any(str(a) == addr for a in _addresses(f, netdev)) and _mtu(f, netdev) == mtu for netdev, addr in assignments
    )


def plan_cx7(facts: Mapping[str, HostFacts], options: SetupOptions) -> tuple[Plan, list[HostError]]:
    subnets = options.subnets or suggest_subnets(facts, options.interfaces)
    numbering = _Numbering(facts)
    steps: list[Step] = []
    blocked: list[HostError] = []
    for index, f in enumerate(facts.values()):
        if not f.reached:
            continue
        if not interfaces_of(f, options.interfaces):
            steps.append(Step(f.host, "setup_host", {}, "cx7", "cx7", noop="no CX7 (RDMA) interface with a link"))
            continue
        assignments, error = _assign(f, index, subnets, options, numbering)
        if error is not None:
            blocked.append(error)
            continue
        summary = ", ".join(f"{n} {a}" for n, a in assignments) + f", MTU {options.mtu}"
        if _done(f, assignments, options.mtu):
            steps.append(Step(f.host, "setup_host", {}, "cx7", "cx7", noop=f"{summary} (saved)"))
            continue
        values = {
            "NETPLAN_FILE": CX7_NETPLAN_FILE,
            "NETPLAN_YAML": netplan_yaml(assignments, options.mtu),
            "CX7_IFACES": [n for n, _a in assignments],
            "CX7_ADDRS": [a for _n, a in assignments],
            "CX7_MTU": str(options.mtu),
        }
        detail = (f"install -m 600 <netplan config> {CX7_NETPLAN_FILE} && netplan apply   (no netplan: nmcli)",)
        step = root_step(f, "cx7", summary, values, detail=detail)
        (blocked if isinstance(step, HostError) else steps).append(step)  # type: ignore[arg-type]
    return Plan(tuple(steps)), blocked
