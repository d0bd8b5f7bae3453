"""The copy chain: a source (a host, or this machine), then the hosts that need something, in order; each hop
receives from the one before it and forwards while it writes, so N hosts cost about one transfer, not N.

Each link uses the best network that works: the receiving host's CX7 (RDMA) addresses when both ends have one, else
its management address; `sync_reach.sh` on the sending host tries them in that order (SSH with BatchMode, the host
key checked against the management address's entry via HostKeyAlias). A chain needs SSH between the hosts; when a
link has none, the copy goes through this machine instead (a star: slower, it carries every byte once per host)
and the user is told how to enable the chain (`sparkrun setup ssh`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sparkrun.core.plan import Plan, Step
from sparkrun.distribution.facts import HostHoldings
from sparkrun.hosts import Host
from sparkrun.shell import ParamValue
from sparkrun.transport.base import Transport

REACH_TIMEOUT_S = 60.0
# Bulk copies between hosts spend their CPU on encryption: prefer the ciphers CPUs accelerate, keep chacha20 as a
# fallback any OpenSSH server accepts.
FAST_CIPHERS = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com"
THIS_MACHINE = "this machine"
MESH_HINT = (
    "the hosts cannot reach each other over SSH, so copies go through this machine (one transfer per host); "
    "`sparkrun setup ssh` meshes the hosts' keys for the faster host-to-host chain"
)


@dataclass(frozen=True)
class Link:
    """A hop of a chain: `host` receives from the member before it, which reaches it at `address`."""

    host: Host
    address: str
    network: str  # "cx7", "management", or "transport" (this machine's own connection)


@dataclass(frozen=True)
class Route:
    source: Host | None  # None: this machine
    hops: tuple[Link, ...]
    relay: bool = False  # a star through this machine (no SSH between the hosts)

    @property
    def source_name(self) -> str:
        return self.source.address if self.source is not None else THIS_MACHINE

    def sender_of(self, index: int) -> str:
        if self.relay or index == 0:
            return self.source_name
        return self.hops[index - 1].host.address

    def describe(self, index: int) -> str:
        """How hop `index` gets its bytes, for the summary."""
        link = self.hops[index]
        if self.relay:
            via = "" if self.source is None else f"from {self.source_name} "
            return f"{via}through this machine"
        if link.network == "transport" or (link.network == "management" and link.address == link.host.address):
            return f"from {self.sender_of(index)}"
        where = f" over {link.address}" + (" (CX7)" if link.network == "cx7" else "")
        return f"from {self.sender_of(index)}{where}"

    def text(self) -> str:
        if self.relay:
            return f"{self.source_name} -> this machine -> " + ", ".join(h.host.address for h in self.hops)
        return " -> ".join([self.source_name, *(h.host.address for h in self.hops)])


def candidates(sender: HostHoldings | None, receiver: Host, holdings: Mapping[str, HostHoldings]) -> list[str]:
    """Addresses to try for sender -> receiver, best first: the receiver's CX7 addresses when both have CX7."""
    mine = holdings.get(receiver.address)
    fast = list(mine.ib_addresses) if mine is not None and sender is not None and sender.ib_addresses else []
    return [a for a in fast if a != receiver.address] + [receiver.address]


def hop_ssh(transport: Transport, sender: Host, receiver: Host, address: str) -> list[str] | None:
    """The command `sender` runs to reach `receiver` at `address` (None: this transport cannot go host to host). At
    an address other than the one the host is known by, its key is checked against that name (HostKeyAlias)."""
    direct = getattr(transport, "direct_ssh", None)
    if direct is None:
        return None
    try:
        argv = list(direct(sender, receiver, address))
    except NotImplementedError:
        return None
    if argv[:1] == ["ssh"] and "--" in argv:
        at = argv.index("--")
        argv[at:at] = ["-c", FAST_CIPHERS]  # AES-GCM first: hardware AES (x86 AES-NI, Arm's crypto extensions)
        if address != receiver.address:
            argv[at:at] = ["-o", f"HostKeyAlias={receiver.address}"]
    return argv


def links(source: Host | None, receivers: Sequence[Host]) -> list[tuple[Host | None, Host]]:
    members: list[Host | None] = [source, *receivers]
    return [(members[i], receivers[i]) for i in range(len(receivers))]


def reach_plan(
    transport: Transport,
    source: Host | None,
    receivers: Sequence[Host],
    holdings: Mapping[str, HostHoldings],
) -> Plan | None:
    """One `sync_reach.sh` per link whose sender is a host (None: this transport cannot go host to host)."""
    steps = []
    for sender, receiver in links(source, receivers):
        if sender is None:
            continue
        addresses = candidates(holdings.get(sender.address), receiver, holdings)
        argvs = [hop_ssh(transport, sender, receiver, a) for a in addresses]
        if any(a is None for a in argvs):
            return None
        values: dict[str, ParamValue] = {
            "ADDRESSES": addresses,
            "ARGV": [word for argv in argvs if argv for word in argv],
            "ARGC": [str(len(argv or ())) for argv in argvs],
            "HUB_URL": "",
            "TARGET": receiver.address,
        }
        summary = f"can {sender.address} copy to {receiver.address} (SSH at {', '.join(addresses)})"
        steps.append(Step(sender, "sync_reach", values, summary, "sync: links", timeout=REACH_TIMEOUT_S))
    return Plan(tuple(steps))


def plan_route(
    source: Host | None,
    receivers: Sequence[Host],
    reached: Mapping[tuple[str, str], str | None] | None,
    holdings: Mapping[str, HostHoldings],
) -> Route:
    """The chain when every link has a working address (`reached[(sender, receiver)]`), else a star through here."""
    hops = []
    for sender, receiver in links(source, receivers):
        if sender is None:
            hops.append(Link(receiver, receiver.address, "transport"))
            continue
        address = (reached or {}).get((sender.address, receiver.address))
        if address is None:
            return Route(source, tuple(Link(r, r.address, "transport") for r in receivers), relay=True)
        fast = address in holdings.get(receiver.address, HostHoldings(receiver.address)).ib_addresses
        hops.append(Link(receiver, address, "cx7" if fast else "management"))
    return Route(source, tuple(hops))
