"""Hosts as sparkrun addresses them: an address, its SSH settings, and whether it is this machine.

Host lists (`-H a,b`, hosts files) are parsed here; clusters (named host groups with settings) live in `clusters.py`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sparkrun.errors import InputError

# A host as users write it: hostname, IPv4, [IPv6]; user@host is rejected (use --user) to keep one way to say it.
HOST_RE = re.compile(r"^[A-Za-z0-9_.:%-]{1,253}$")


@dataclass(frozen=True)
class SshSettings:
    user: str | None = None
    port: int | None = None
    identity_file: str | None = None
    options: tuple[tuple[str, str], ...] = ()
    connect_timeout: float | None = None  # seconds; None: the transport's default (10)


@dataclass(frozen=True)
class Host:
    address: str
    ssh: SshSettings = field(default_factory=SshSettings)
    local: bool = False

    def __str__(self) -> str:
        return self.address


def parse_host_list(text: str, *, where: str) -> tuple[str, ...]:
    """Split `a,b c` into hosts; never splits a name into characters (older sparkrun's #257)."""
    hosts = [h for h in re.split(r"[,\s]+", text.strip()) if h]
    for h in hosts:
        if not HOST_RE.match(h) or h.startswith("-"):
            raise InputError(f"{where}: invalid host {h!r}", hint="hosts are names or IP addresses, comma-separated")
    if len(set(hosts)) != len(hosts):
        dupes = sorted({h for h in hosts if hosts.count(h) > 1})
        raise InputError(f"{where}: duplicate host(s): {', '.join(dupes)}")
    return tuple(hosts)


def read_hosts_file(given: Path | str) -> tuple[str, ...]:
    """Hosts from a file (one per line or comma-separated, `#` comments); `~` expands as the shell would (an unknown
    `~user` stays as written)."""
    path = Path(os.path.expanduser(str(given)))
    shown = str(given) if str(given).isprintable() else repr(str(given))
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path, or bytes that are not UTF-8
        why = exc.strerror if isinstance(exc, OSError) else "not a usable file name or not UTF-8 text"
        raise InputError(f"{shown}: cannot read hosts file: {why}") from exc
    kept = [line.split("#", 1)[0].strip() for line in lines]
    return parse_host_list(" ".join(k for k in kept if k), where=str(path))


_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_local_address(address: str) -> bool:
    """True when `address` is this machine, so commands run with local bash instead of SSH-ing to ourselves.

    Checked without DNS: loopback names, this machine's hostname, or an IP literal that a socket can bind to
    (binding fails with EADDRNOTAVAIL for addresses that are not ours).
    """
    name = address.strip("[]").lower()
    if name in _LOOPBACK_NAMES or name == socket.gethostname().lower():
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False
    if ip.is_loopback:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((str(ip), 0))
        except OSError:
            return False
    return True


def split_assignments(items: Sequence[str], *, what: str) -> dict[str, str]:
    """`["K=V", ...]` → dict; errors name the bad item."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{what}: expected KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out
