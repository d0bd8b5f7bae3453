"""What a setup command was asked to do: the options, the limits the checks apply, the callbacks that ask the user
(passwords, host keys), and how the user named the hosts (so a fix command acts on the same hosts)."""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sparkrun.errors import InputError

DEFAULT_HF_CACHE = "~/.cache/huggingface"  # the SSH user's; same default as the launch planner
CX7_NETPLAN_FILE = "/etc/netplan/70-sparkrun-cx7.yaml"
DEFAULT_MTU = 9000
# earlyoom: kill an inference engine before sshd or dockerd when memory runs out (names as the kernel shows them,
# at most 15 characters); the rest are earlyoom's defaults, plus Debian's hourly report.
EARLYOOM_PREFER = "^(vllm|python|python3|sglang|llama-server|rpc-server|ray|trtllm-serve)$"
EARLYOOM_AVOID = "^(sshd|dockerd|containerd|systemd|systemd-journal|earlyoom|Xorg)$"
_REGEX_SAFE = re.compile(r"^[^\s\"'\\`$]*\$?$")  # one word for EARLYOOM_ARGS: no blanks, quotes, backslashes


@dataclass(frozen=True)
class Origin:
    """How the user named the hosts (`-H`, `--hosts-file`, `--cluster`, none = the default cluster) and the SSH user
    override, so that a printed fix command acts on exactly the same hosts."""

    hosts: str | None = None
    hosts_file: str | None = None
    cluster: str | None = None
    user: str | None = None

    def command(self, action: str, *extra: str) -> str:
        parts = ["sparkrun", "setup", *action.split()]
        if self.hosts:
            parts += ["-H", self.hosts]
        elif self.hosts_file:
            parts += ["--hosts-file", self.hosts_file]
        elif self.cluster:
            parts += ["--cluster", self.cluster]
        if self.user:
            parts += ["--user", self.user]
        return " ".join(shlex.quote(p) for p in parts) + "".join(f" {e}" for e in extra)


@dataclass(frozen=True)
class Limits:
    """Where a check turns from ok to warn or fail (README "setup check")."""

    min_free_gib: float = 10.0  # fail below this much free space on the cache filesystem
    warn_used_percent: float = 90.0  # warn at or above this much of it used
    max_skew_s: float = 5.0  # fail when a host's clock is further off the control machine's
    mtu: int = DEFAULT_MTU  # warn when a CX7 interface has another MTU


@dataclass(frozen=True)
class SetupOptions:
    cache_dir: str | None = None  # the Hugging Face cache on the hosts; None: the cluster's, else DEFAULT_HF_CACHE
    gpu_image: str | None = None  # image for the GPU-in-a-container check; None: the newest image the host has
    limits: Limits = field(default_factory=Limits)
    prefer: str | None = None  # earlyoom --prefer / --avoid (None: sparkrun's defaults for a new install)
    avoid: str | None = None
    subnets: tuple[str, ...] = ()  # cx7: one per CX7 interface, in interface-name order
    interfaces: tuple[str, ...] = ()  # cx7: only these interfaces (default: every up RDMA netdev)
    mtu: int = DEFAULT_MTU
    force: bool = False  # cx7: renumber interfaces that have an address outside the subnet
    accept_host_keys: tuple[str, ...] = ()  # SHA256 fingerprints accepted without a terminal
    discover_ips: bool = True  # ssh: record peers' host keys under their IPv4 addresses too

    def __post_init__(self) -> None:
        for name, value in (("--prefer", self.prefer), ("--avoid", self.avoid)):
            if value is not None and not _REGEX_SAFE.match(value):
                raise InputError(
                    f"{name}: {value!r} cannot go into EARLYOOM_ARGS",
                    hint="use one regular expression without blanks, quotes, backslashes or `$` inside",
                )
        for subnet in self.subnets:
            parse_subnet(subnet)
        if not 1280 <= self.mtu <= 9216:
            raise InputError(f"--mtu {self.mtu}: out of range", hint="CX7 ports take 1280..9216 (9000 is usual)")

    def earlyoom_args(self, current: str | None) -> str:
        """EARLYOOM_ARGS to write: "" keeps the host's file as it is (an existing install without new options)."""
        if current is not None and self.prefer is None and self.avoid is None:
            return ""
        words = ["-r", "3600", "--prefer", self.prefer or EARLYOOM_PREFER, "--avoid", self.avoid or EARLYOOM_AVOID]
        return " ".join(words)


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise InputError(f"--subnet {text!r}: not an IPv4 network", hint="e.g. --subnet 192.168.177.0/24") from exc
    if not isinstance(net, ipaddress.IPv4Network) or net.prefixlen > 30:
        raise InputError(f"--subnet {text!r}: need an IPv4 network with room for hosts (prefix /30 or shorter)")
    return net


# (host, user) -> the sudo password, or None when nobody can be asked (no terminal)
AskPassword = Callable[[str, str], str | None]
# (host, [(key type, SHA256 fingerprint), ...]) -> True when the user confirms these keys belong to the host
ConfirmHostKey = Callable[[str, Sequence[tuple[str, str]]], bool]
# (question) -> yes?  (the wizard asks before each step unless --yes)
Confirm = Callable[[str], bool]


@dataclass(frozen=True)
class Prompts:
    """How to ask the user. None: nobody to ask (not a terminal); the command then fails with what it needed."""

    password: AskPassword | None = None
    host_key: ConfirmHostKey | None = None
    confirm: Confirm | None = None
