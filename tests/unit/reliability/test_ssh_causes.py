"""SSH's own failures are named as such, whatever OpenSSH said (and however little): every message OpenSSH prints
for a lost, refused, timed-out, unverifiable or unauthorised connection becomes one cause with a hint; lines about
the local multiplexing socket are not mistaken for the host's answer; a failure with no message at all is a lost
connection, never a bare exit status."""

from __future__ import annotations

import pytest

from reliability_report import CaseLog
from sparkrun.transport.ssh import (
    AUTH_FAILED,
    CONNECTION_LOST,
    GENERIC_HINT,
    HOST_KEY_CHANGED,
    HOST_KEY_UNKNOWN,
    TIMED_OUT,
    classify_ssh_error,
    ssh_hint,
)

SAMPLES = {
    "Timeout, server 10.0.0.2 not responding.": CONNECTION_LOST,
    "client_loop: send disconnect: Broken pipe": CONNECTION_LOST,
    "Connection to 10.0.0.2 closed by remote host.": CONNECTION_LOST,
    "kex_exchange_identification: read: Connection reset by peer": CONNECTION_LOST,
    "ssh: connect to host 10.0.0.2 port 22: Connection timed out": TIMED_OUT,
    "Connection timed out during banner exchange": TIMED_OUT,
    "ssh: connect to host 10.0.0.2 port 22: Connection refused": "SSH connection refused (is sshd running?)",
    "ssh: connect to host 10.0.0.2 port 22: No route to host": "SSH connection failed: no route to host",
    "ssh: Could not resolve hostname spark9: Name or service not known": "SSH: could not resolve the host name",
    "ssh: connect to host 10.0.0.2 port 22: Network is unreachable": "SSH connection failed: network is unreachable",
    "No ED25519 host key is known for 10.0.0.2 and you have requested strict checking.\n"
    "Host key verification failed.": HOST_KEY_UNKNOWN,
    "@@@@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n@@@@@@@@@@@\n"
    "Host key verification failed.": HOST_KEY_CHANGED,
    "root@10.0.0.2: Permission denied (publickey).": AUTH_FAILED,
    "kex_exchange_identification: Connection closed by remote host\nConnection closed by 10.0.0.2 port 22": (
        CONNECTION_LOST
    ),
    # only about the local ControlMaster socket: the session ended under the script
    "mux_client_read_packet: read header failed: Broken pipe": f"{CONNECTION_LOST}: ssh ended without a message",
    "Control socket connect(/tmp/sparkrun-ssh-0/abc): Connection refused\n"
    "ssh: connect to host 10.0.0.2 port 22: Connection timed out": TIMED_OUT,
    "": f"{CONNECTION_LOST}: ssh ended without a message",
}


@pytest.mark.parametrize(("stderr", "cause"), list(SAMPLES.items()), ids=[f"s{i}" for i in range(len(SAMPLES))])
def test_each_openssh_failure_becomes_one_named_cause_with_a_hint(stderr: str, cause: str) -> None:
    assert classify_ssh_error(stderr) == cause
    assert ssh_hint(cause)


def test_an_unknown_message_is_still_named_as_ssh_and_gets_the_general_hint(reliability: CaseLog) -> None:
    cause = classify_ssh_error("Bad owner or permissions on /root/.ssh/config")
    assert cause == "SSH failed: Bad owner or permissions on /root/.ssh/config"
    assert ssh_hint(cause) == GENERIC_HINT
    assert ssh_hint("SSH connection refused (is sshd running?) (from 10.0.0.1, host to host)").startswith("start sshd")
    reliability.case(
        "OpenSSH's messages for its own failures",
        suite="ssh",
        fault=f"{len(SAMPLES) + 1} stderr texts of ssh exit 255 (lost, refused, timed out, host key, auth, mux noise)",
        checked="each becomes one cause starting with 'SSH' and a hint; never a bare exit status",
        inputs=len(SAMPLES) + 1,
    )
