"""Root on one test host reaching another over SSH, for host-to-host pipe tests."""

from __future__ import annotations

import shlex

from testbed.harness import Testbed


def mesh_root(testbed: Testbed, source: str, sink: str) -> None:
    """Let root on `source` reach `sink` over SSH (what `sparkrun setup ssh` does), if the testbed has no mesh."""
    if testbed.exec(source, f"ssh -o BatchMode=yes -o ConnectTimeout=3 {sink} true", check=False).returncode == 0:
        return
    testbed.exec(source, "test -f ~/.ssh/id_ed25519 || ssh-keygen -q -t ed25519 -N '' -f ~/.ssh/id_ed25519")
    key = testbed.exec(source, "cat ~/.ssh/id_ed25519.pub").stdout.strip()
    testbed.exec(sink, f"mkdir -p ~/.ssh && echo {shlex.quote(key)} >> ~/.ssh/authorized_keys")
    testbed.exec(source, f"ssh-keyscan -H {sink} >> ~/.ssh/known_hosts 2>/dev/null")
