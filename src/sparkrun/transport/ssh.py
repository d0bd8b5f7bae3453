"""`SshTransport`: the system OpenSSH client, so the user's `~/.ssh/config`, agent and ProxyJump keep working.

Connections are multiplexed (ControlMaster=auto in a private control directory, ControlPersist): after the first
handshake to a host every further step costs one round trip instead of a new handshake. `BatchMode=yes` means
sparkrun never hangs on a prompt; host-key checking is left to the user's configuration, never disabled. A host that
is this machine runs bash directly (no SSH to ourselves).

SSH's own failures (exit 255) are turned into one short cause with a hint (`classify_ssh_error`, `ssh_hint`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from sparkrun.config import ssh_control_dir
from sparkrun.hosts import Host, SshSettings
from sparkrun.transport.process import ProcessTransport
from sparkrun.transport.protocol import parse_output

DEFAULT_CONNECT_TIMEOUT = 10.0
CONTROL_PERSIST_SECONDS = 120
SSH_FAILED = 255  # OpenSSH's exit status for its own errors
# A multiplexed session over a dead link would otherwise wait for TCP to give up: probe every 5 s, drop the
# connection after two unanswered probes.
ALIVE_OPTIONS = ("-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=2")

CONNECTION_LOST = "SSH connection lost (the host or its link went down)"
HOST_KEY_UNKNOWN = "SSH host key unknown (not in known_hosts)"
HOST_KEY_CHANGED = "SSH HOST KEY CHANGED since it was recorded in known_hosts"
AUTH_FAILED = "SSH authentication failed (permission denied)"
TIMED_OUT = "SSH connection timed out"

_SSH_ERRORS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed"), HOST_KEY_CHANGED),
    (re.compile(r"No \S+ host key is known|Host key verification failed"), HOST_KEY_UNKNOWN),
    (re.compile(r"Permission denied"), AUTH_FAILED),
    (
        re.compile(r"Timeout, server .* not responding|Broken pipe|closed by remote host|Connection reset"),
        CONNECTION_LOST,
    ),
    (re.compile(r"Connection timed out|Operation timed out|timed out during banner"), TIMED_OUT),
    (re.compile(r"No route to host"), "SSH connection failed: no route to host"),
    (re.compile(r"Connection refused"), "SSH connection refused (is sshd running?)"),
    (re.compile(r"Could not resolve hostname"), "SSH: could not resolve the host name"),
    (re.compile(r"Network is unreachable"), "SSH connection failed: network is unreachable"),
    (re.compile(r"Connection closed"), "SSH connection closed by the host"),
]

SSH_HINTS = {
    HOST_KEY_UNKNOWN: "verify and record the host's key: `sparkrun setup ssh HOST` shows it for confirmation "
    "(or: ssh-keyscan HOST, compare the fingerprint, append to ~/.ssh/known_hosts)",
    HOST_KEY_CHANGED: "if the host was reinstalled, remove the old key (ssh-keygen -R HOST) and record the new one "
    "with `sparkrun setup ssh HOST`; otherwise do not connect: someone may be impersonating it",
    AUTH_FAILED: "check the SSH user and key (`sparkrun cluster show NAME`); sparkrun never asks for passwords",
    TIMED_OUT: "check that the host is up and reachable on the SSH port",
    "SSH connection failed: no route to host": "check the host's address and that it is up",
    "SSH connection refused (is sshd running?)": "start sshd on the host, or check the SSH port (`--ssh-port`)",
    CONNECTION_LOST: "check the host and its network; a later `sparkrun stop` finishes what is left on it",
    "SSH: could not resolve the host name": "check the host name (or use its IP address)",
    "SSH connection failed: network is unreachable": "check this machine's network and the host's address",
    "SSH connection closed by the host": "check the host's sshd (its log says why it closed the connection)",
}
GENERIC_HINT = "check that `ssh HOST true` works with the cluster's SSH settings (`sparkrun cluster show NAME`)"
# Lines about ControlMaster's local socket say nothing about the host (ssh then connects directly).
_MUX_NOISE = re.compile(r"^(Control ?[Ss]ocket|mux_client_|muxclient|ControlPath )")


def ssh_hint(cause: str) -> str:
    """The hint for a cause from `classify_ssh_error` (or a transport's other failures): always one."""
    if cause.startswith("cannot run ssh"):
        return "install the OpenSSH client (ssh) on this machine"
    base = cause.split(" (from ", 1)[0].split(": ssh ended", 1)[0]  # host to host; no message from ssh
    return SSH_HINTS.get(base, GENERIC_HINT)


def classify_ssh_error(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    said = [line for line in lines if not _MUX_NOISE.match(line.strip())]
    text = "\n".join(said)
    for pattern, message in _SSH_ERRORS:
        if pattern.search(text):
            return message
    if said:
        return f"SSH failed: {said[-1].strip()}"
    # No word from ssh itself (or only about its multiplexing socket): the session ended under the script.
    return f"{CONNECTION_LOST}: ssh ended without a message"


def ssh_options(s: SshSettings, *, from_control: bool) -> list[str]:
    """OpenSSH options for a host's settings. `from_control=False`: for use on another host (host to host), so
    nothing that names a file of this machine (identity file) is passed."""
    timeout = s.connect_timeout if s.connect_timeout is not None else DEFAULT_CONNECT_TIMEOUT
    argv = ["-T", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, round(timeout))}", *ALIVE_OPTIONS]
    if s.port:
        argv += ["-p", str(s.port)]
    if s.user:
        argv += ["-l", s.user]
    if from_control and s.identity_file:
        argv += ["-i", os.path.expanduser(s.identity_file)]
    for key, value in s.options:
        argv += ["-o", f"{key}={value}"]
    return argv


class SshTransport(ProcessTransport):
    """Remote hosts over OpenSSH; hosts that are this machine through local bash."""

    def __init__(
        self,
        *,
        control_dir: Path | None = None,
        max_parallel: int = 16,
        trace: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(max_parallel=max_parallel, trace=trace)
        self.control_dir = control_dir or ssh_control_dir()

    def _ensure_control_dir(self) -> None:
        self.control_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = self.control_dir.stat()
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            os.chmod(self.control_dir, 0o700)

    def argv(self, host: Host, command: str) -> list[str]:
        if host.local:
            return ["bash", "-c", command]
        self._ensure_control_dir()
        mux = ["-o", "ControlMaster=auto", "-o", f"ControlPath={self.control_dir}/%C"]
        mux += ["-o", f"ControlPersist={CONTROL_PERSIST_SECONDS}"]
        return ["ssh", *ssh_options(host.ssh, from_control=True), *mux, "--", host.address, command]

    def transport_error(self, host: Host, returncode: int, stdout: str, stderr: str) -> str | None:
        if host.local or returncode != SSH_FAILED or parse_output(stdout).last("fail") is not None:
            return None
        return classify_ssh_error(stderr)

    def direct_ssh(self, source: Host, sink: Host, address: str) -> list[str]:
        return ["ssh", *ssh_options(sink.ssh, from_control=False), "--", address]
