"""SSH failures of every transport operation on the test cluster, named as SSH's with the host and the step: a stream
(logs -f, readiness) whose link is cut, a channel opened to a host whose sshd is dead, a host-to-host pipe whose sink
refuses the source's SSH, a pipe through this machine whose sink's link is cut mid-transfer."""

from __future__ import annotations

import threading
import time

import pytest

from e2e.faultkit import Sshd, restore
from e2e.mesh import mesh_root
from reliability_report import CaseLog
from sparkrun.hosts import Host
from sparkrun.shell import Script
from sparkrun.transport.base import Direct
from sparkrun.transport.ssh import SshTransport, ssh_hint
from testbed.harness import Testbed

pytestmark = pytest.mark.e2e


def test_transport_operations_name_ssh_failures(
    transport: SshTransport, testbed: Testbed, reliability: CaseLog
) -> None:
    h1, h2, h3 = testbed.hosts[:3]
    causes: dict[str, tuple[str, str, str]] = {}
    # 1. a stream whose link is cut while it waits
    stream = transport.stream(Host(h1), Script("follow", "echo started; sleep 120\n"))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(stream), daemon=True)
    reader.start()
    time.sleep(2)
    testbed.link(h1, up=False)
    try:
        reader.join(timeout=60)
        result = stream.result()
    finally:
        restore(testbed, [h1])
    causes["stream, link cut"] = (result.host, *result.failure())
    # 2. a channel to a host whose sshd is dead (with 8 MiB of stdin that cannot be delivered)
    sshd = Sshd(testbed, h2)
    sshd.kill()
    try:
        channel = transport.open(Host(h2), Script("receive", "cat >/dev/null\n", stdin=b"x" * (8 << 20)))
        result = channel.result()
    finally:
        sshd.start()
    causes["channel, sshd dead"] = (result.host, *result.failure())
    # 3. host to host: the source's own SSH to the sink is refused
    mesh_root(testbed, h1, h3)
    sink_sshd = Sshd(testbed, h3)
    sink_sshd.kill()
    try:
        piped = transport.pipe(
            (Host(h1), Script("send", "head -c 1000000 /dev/zero\n")),
            (Host(h3), Script("receive", "cat >/dev/null\n")),
            direct=Direct(h3),
            timeout=60,
        )
    finally:
        sink_sshd.start()
    causes["host-to-host pipe, sink sshd dead"] = (piped.sink.host, *piped.sink.failure())
    for what, (host, step, cause) in causes.items():
        reliability.case(
            f"SSH failure in a {what.split(',')[0]}",
            suite="ssh",
            fault=what,
            checked="the result names the host, the step and SSH's cause (with a hint), not an exit status",
            cause=f"{host}: {step}: {cause}",
        )
    assert causes["stream, link cut"][:2] == (h1, "follow") and causes["stream, link cut"][2].startswith("SSH "), causes
    assert causes["channel, sshd dead"] == (h2, "receive", "SSH connection refused (is sshd running?)"), causes
    host, step, cause = causes["host-to-host pipe, sink sshd dead"]
    assert (host, step) == (h3, "receive") and cause.startswith("SSH connection refused"), causes
    assert f"from {h1}" in cause and ssh_hint(cause).startswith("start sshd")
    assert "started" in lines
