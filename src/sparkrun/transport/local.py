"""`LocalTransport`: every host's scripts run with bash on this machine (for a cluster of one that is this machine,
and for tests that run the real host scripts without SSH)."""

from __future__ import annotations

from sparkrun.hosts import Host
from sparkrun.transport.process import ProcessTransport


class LocalTransport(ProcessTransport):
    def argv(self, host: Host, command: str) -> list[str]:
        return ["bash", "-c", command]

    def direct_ssh(self, source: Host, sink: Host, address: str) -> list[str]:
        # Both ends are this machine: the "remote" command runs in a second local bash.
        return ["bash", "-c", 'exec bash -c "$1"', "sparkrun-local-sink"]
