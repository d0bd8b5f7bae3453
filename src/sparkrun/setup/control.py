"""Setup steps on the control machine itself (`setup_control.sh`, local bash): reading a host's SSH key over the
network, recording keys the user confirmed in the known_hosts file OpenSSH uses for that host, and closing sparkrun's
shared SSH connection to a host so the next login picks up a new group.

A key scanned over the network is not trusted: it is recorded only when the user confirms its fingerprint on a
terminal or named it with `--accept-host-key SHA256:...` (`--yes` never accepts one). A host's keys read over an
already verified connection (setup_check.sh scans its own sshd through a local address) need no confirmation; that is
how the hosts learn each other's keys (`mesh.py`).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sparkrun.config import ssh_control_dir
from sparkrun.core.plan import Plan, Step
from sparkrun.errors import HostError
from sparkrun.hosts import Host
from sparkrun.setup.options import ConfirmHostKey
from sparkrun.transport.base import Result
from sparkrun.transport.ssh import ssh_options

CONTROL = Host("localhost", local=True)  # steps that run on this machine


def fingerprint(key_b64: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob (as `ssh-keygen -lf` prints it)."""
    digest = hashlib.sha256(base64.b64decode(key_b64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class Scan:
    """What the control machine's OpenSSH would look up for a host, and the keys its sshd presents now."""

    host: str
    known_hosts_file: str
    name: str  # the known_hosts name OpenSSH looks up: HostKeyAlias, [name]:port or name
    keys: tuple[tuple[str, str], ...]  # (type, base64)

    def fingerprints(self) -> list[tuple[str, str]]:
        return [(kind, fingerprint(b64)) for kind, b64 in self.keys]


def scan_values(host: Host) -> dict[str, str | list[str]]:
    return {"ACTION": "scan", "SSH_ARGV": ["ssh", *ssh_options(host.ssh, from_control=True)], "TARGET": host.address}


def parse_scan(host: Host, result: Result) -> Scan | HostError:
    if not result.ok:
        step, cause = result.failure()
        return HostError(host.address, step, cause)
    out = result.output
    keys = tuple(tuple(v.split(" ", 1)) for v in out.all("scanned") if " " in v)
    return Scan(host.address, out.last("known_hosts_file") or "", out.last("name") or host.address, keys)  # type: ignore[arg-type]


def accepted_keys(scan: Scan, accept: Sequence[str], confirm: ConfirmHostKey | None) -> tuple[tuple[str, str], ...]:
    """The scanned keys the user accepted: those named by --accept-host-key, else all of them if confirmed."""
    named = {fp.strip() for fp in accept}
    chosen = tuple(k for k in scan.keys if fingerprint(k[1]) in named)
    if chosen:
        return chosen
    if confirm is not None and confirm(scan.host, scan.fingerprints()):
        return scan.keys
    return ()


def refused(scan: Scan) -> HostError:
    shown = ", ".join(f"{kind} {fp}" for kind, fp in scan.fingerprints())
    return HostError(
        scan.host,
        "ssh",
        f"host key not accepted (scanned over the network: {shown})",
        hint="compare with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the host's console, then confirm "
        "on a terminal or pass --accept-host-key SHA256:...",
    )


def record_plan(scans: Sequence[Scan], chosen: Mapping[str, tuple[tuple[str, str], ...]]) -> Plan:
    """One step per known_hosts file, appending the accepted keys."""
    by_file: dict[str, list[str]] = {}
    names: dict[str, list[str]] = {}
    for scan in scans:
        keys = chosen.get(scan.host, ())
        if keys:
            by_file.setdefault(scan.known_hosts_file, []).extend(f"{scan.name} {t} {b}" for t, b in keys)
            names.setdefault(scan.known_hosts_file, []).append(scan.host)
    steps = tuple(
        Step(
            CONTROL,
            "setup_control",
            {"ACTION": "record", "KNOWN_HOSTS_FILE": path, "LINES": lines},
            f"record the confirmed host keys of {', '.join(names[path])} in {path}",
            "host keys",
        )
        for path, lines in by_file.items()
    )
    return Plan(steps)


def reconnect_step(host: Host, why: str) -> Step:
    """Close sparkrun's shared (ControlMaster) connection to `host`: the next connection is a new login."""
    argv = ["ssh", *ssh_options(host.ssh, from_control=True), "-o", f"ControlPath={ssh_control_dir()}/%C"]
    values = {"ACTION": "reconnect", "SSH_ARGV": argv, "TARGET": host.address}
    return Step(CONTROL, "setup_control", values, f"reconnect to {host.address} ({why})", "reconnect")
