"""`setup ssh`: every host reaches every other host over SSH with BatchMode, as the cluster's SSH user.

Two stages, both as that user (no root): `keygen` gives a host without a key pair one (ed25519, made on the host: a
private key never travels), then `trust` authorizes every host's public key on every host and records every host's
SSH host keys in every host's known_hosts, under the names the hosts use for each other (the cluster address, the
host name, and with `discover_ips` its IPv4 addresses, CX7 ones included). Those host keys come from each host's own
sshd, read by setup_check.sh over the control machine's verified connection, so they need no confirmation.
A host whose every pair already works gets a no-op: a second run changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from sparkrun.core.plan import Plan, Step
from sparkrun.errors import HostError
from sparkrun.setup.facts import HostFacts

PLACEHOLDER = "<the key {host} gets in the keygen step>"


def plan_keygen(facts: Mapping[str, HostFacts]) -> tuple[Plan, list[HostError]]:
    steps: list[Step] = []
    blocked: list[HostError] = []
    for f in facts.values():
        if not f.reached:
            continue
        if f.user_key:
            steps.append(Step(f.host, "setup_ssh", {}, "ssh keys", "ssh keys", noop=f"{f.user} has a key pair"))
        elif not f.has("ssh-keygen"):
            hint = "install openssh-client"
            blocked.append(HostError(f.address, "ssh-keygen", "ssh-keygen is not installed", hint=hint))
        else:
            summary = f"make an SSH key pair for {f.user} (~/.ssh/id_ed25519, ed25519)"
            steps.append(Step(f.host, "setup_ssh", {"ACTION": "keygen"}, summary, "ssh keys", timeout=60))
    return Plan(tuple(steps)), blocked


def known_names(f: HostFacts, *, discover_ips: bool) -> list[str]:
    """The names a peer may use for host `f`, as known_hosts wants them ([name]:port off port 22)."""
    names = [f.address, f.hostname, *(f.ipv4() if discover_ips else [])]
    port = f.host.ssh.port
    unique = list(dict.fromkeys(n for n in names if n))
    return [f"[{n}]:{port}" for n in unique] if port and port != 22 else unique


def _pair_ok(facts: Mapping[str, HostFacts], src: HostFacts, dst: HostFacts) -> bool:
    if src is dst:
        return True
    return any(p.peer == dst.address and p.outcome == "ok" for p in src.mesh)


def _settled(facts: Mapping[str, HostFacts], f: HostFacts) -> bool:
    """Every pair with `f` at either end already works."""
    peers = [p for p in facts.values() if p.reached]
    return all(_pair_ok(facts, f, p) and _pair_ok(facts, p, f) for p in peers)


def plan_trust(
    facts: Mapping[str, HostFacts], new_keys: Mapping[str, str], *, discover_ips: bool
) -> tuple[Plan, list[HostError]]:
    """`new_keys`: host -> public key made in the keygen stage (a placeholder while only planning)."""
    hosts = [f for f in facts.values() if f.reached]
    blocked = [
        HostError(f.address, "ssh", "could not read this host's own SSH host keys", hint="is ssh-keyscan installed?")
        for f in hosts
        if not f.host_keys
    ]
    keyed = [f for f in hosts if f.host_keys]
    authorized = [key for f in hosts if (key := new_keys.get(f.address) or f.user_key)]
    known = [f"{n} {key}" for f in keyed for n in known_names(f, discover_ips=discover_ips) for key in f.host_keys]
    steps: list[Step] = []
    for f in keyed:
        if not new_keys and _settled(facts, f):
            reason = "reaches and is reached by every host"
            steps.append(Step(f.host, "setup_ssh", {}, "ssh trust", "ssh trust", noop=reason))
            continue
        values = {"ACTION": "trust", "AUTHORIZED": authorized, "KNOWN": known}
        summary = f"authorize {len(authorized)} hosts' keys for {f.user}, record {len(keyed)} hosts' host keys"
        detail = (
            f"~/.ssh/authorized_keys += the public keys of {', '.join(h.address for h in hosts)}",
            f"~/.ssh/known_hosts += host keys of {', '.join(h.address for h in keyed)} (names, IPs)",
        )
        steps.append(Step(f.host, "setup_ssh", values, summary, "ssh trust", timeout=60, detail=detail))
    return Plan(tuple(steps)), blocked


def learned_keys(finished: list[tuple[str, str | None]]) -> dict[str, str]:
    """host -> public key reported by the keygen steps ((host, `userkey` event value) pairs)."""
    return {host: key for host, key in finished if key}
