"""What setup_check.sh would answer for a prepared DGX Spark host (and how to make it unprepared), and a HostSetup
over the in-memory FakeTransport answering with it. Shared by the setup unit tests."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Mapping
from typing import Any

from sparkrun.clusters import Cluster, HostSelection
from sparkrun.core.events import Event
from sparkrun.hosts import Host, SshSettings
from sparkrun.setup import HostSetup, Origin, Prompts
from sparkrun.setup.control import CONTROL
from sparkrun.shell import Script
from sparkrun.transport.base import Result
from sparkrun.transport.fake import FakeTransport, events

HOSTS = ("10.0.0.11", "10.0.0.12", "10.0.0.13")
UID = 1000


def key_blob(seed: str) -> str:
    """A stable base64 key blob (fingerprints are computed over it)."""
    return base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + hashlib.sha256(seed.encode()).digest()).decode()


def host_key(address: str) -> str:
    return f"ssh-ed25519 {key_blob('host ' + address)}"


def user_key(address: str) -> str:
    return f"ssh-ed25519 {key_blob('user ' + address)} spark@{name(address)}"


def name(address: str) -> str:
    return f"spark-{address.rsplit('.', 1)[-1]}"


def prepared(address: str, peers: tuple[str, ...] = HOSTS, **changes: Any) -> dict[str, list[str]]:
    """setup_check.sh's events for a prepared host, as key -> values; `changes` replace keys (a list, or a single
    string; None removes the key)."""
    n = address.rsplit(".", 1)[-1]
    data: dict[str, list[str]] = {
        "clock": [f"{time.time():.6f}"],
        "user": [f"spark {UID} {UID} /home/spark"],
        "hostname": [name(address)],
        "groups": ["spark sudo docker"],
        "addr": [f"{address}/24 eth0", f"10.0.1.{n}/24 enp1s0f0np0"],
        "tool": [f"{t} yes" for t in ("bash", "curl", "tar", "ssh", "ssh-keygen", "ssh-keyscan", "sudo")]
        + [f"{t} yes" for t in ("apt-get", "systemctl", "netplan", "docker")]
        + ["nmcli no"],
        "sudo": ["nopasswd"],
        "ntp": ["yes"],
        "docker_member": ["yes"],
        "gpu_host": ["1 NVIDIA GB10"],
        "docker": ["ok 27.5.1"],
        "gpu_container": ["ok --gpus GPU 0: NVIDIA GB10 (UUID: GPU-1)"],
        "cache": ["exists writable /home/spark/.cache/huggingface"],
        "disk": [f"{4000 * 1024 * 1024} {1000 * 1024 * 1024} {3000 * 1024 * 1024} ext4 /"],
        "ib": [f"rocep1s0f0 1 ACTIVE Ethernet enp1s0f0np0 9000 up 10.0.1.{n}/24"],
        "cx7_file": ["yes"],
        "earlyoom": ["installed active -r 3600"],
        "hostkey": [host_key(address)],
        "userkey": [user_key(address)],
        "mesh": [f"{p} ok " for p in peers if p != address],
    }
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = [value] if isinstance(value, str) else list(value)
    return data


def output(data: Mapping[str, list[str]]) -> str:
    return events(*[(k, v) for k, values in data.items() for v in values])


def selection(hosts: tuple[str, ...] = HOSTS, user: str = "spark", port: int | None = None) -> HostSelection:
    ssh = SshSettings(user=user, port=port)
    return HostSelection(tuple(Host(h, ssh) for h in hosts), "cluster lab", Cluster("lab", hosts, ssh=ssh))


Answer = Callable[[Host, Script], str | Result | None]


class FakeHosts:
    """A FakeTransport whose hosts answer setup_check.sh from `states` (address -> events, or a Result)."""

    def __init__(self, hosts: tuple[str, ...] = HOSTS, **per_host: dict[str, Any]) -> None:
        self.hosts = hosts
        self.states: dict[str, dict[str, list[str]] | Result] = {
            h: prepared(h, hosts, **per_host.get(h.replace(".", "_"), {})) for h in hosts
        }
        self.transport = FakeTransport({"setup_check": self._check})

    def _check(self, host: Host, script: Script) -> str | Result:
        state = self.states[host.address]
        return state if isinstance(state, Result) else output(state)

    def on(self, name: str, handler: Answer | str) -> None:
        self.transport.on(name, handler)

    def ran(self, name: str) -> list[str]:
        return self.transport.ran(name)

    def scripts(self, name: str) -> list[Script]:
        return [s for _h, s in self.transport.scripts if s.name == name]


def make_setup(
    fake: FakeHosts, *, origin: Origin | None = None, user: str = "spark", port: int | None = None
) -> tuple[HostSetup, list[Event]]:
    seen: list[Event] = []
    sel = selection(fake.hosts, user=user, port=port)
    setup = HostSetup(lambda: sel, fake.transport, emit=seen.append, origin=origin or Origin(cluster="lab"))
    return setup, seen


def no_prompts() -> Prompts:
    return Prompts()


def unreachable(address: str, cause: str) -> Result:
    return Result(address, "setup_check", 255, "", "", 0.1, cause)


__all__ = ["CONTROL", "HOSTS", "FakeHosts", "make_setup", "prepared", "unreachable"]
