"""Host keys on the test cluster: a key the control machine does not know is scanned over the network and recorded
only when the user confirms its fingerprint (on a terminal, or `--accept-host-key`); the hosts' keys for each other
are read over verified connections and need no confirmation (test_setup.py: the mesh)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from e2e.cli import ok, sparkrun
from e2e.setup_helpers import check, lines_by_host, on_terminal, own_connections
from testbed.harness import Testbed

pytestmark = pytest.mark.e2e


def fingerprint_of(testbed: Testbed, host: str) -> str:
    """The host's key fingerprint as OpenSSH prints it, from the testbed's own copy of the host key."""
    pub = testbed.state_dir / "keys" / f"host{testbed.index(host)}_ed25519.pub"
    out = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True).stdout
    return out.split()[1]


@pytest.fixture
def fresh(testbed: Testbed, sparkrun_env: dict[str, str], tmp_path: Path) -> Path:
    """A cluster `fresh` (two hosts, root) whose known_hosts file is new and empty."""
    known = tmp_path / "known_hosts"
    known.touch()
    testbed.cluster_file(Path(sparkrun_env["SPARKRUN_CONFIG_DIR"]), name="fresh")
    hosts = ",".join(testbed.hosts[:2])
    ok(sparkrun_env, "cluster", "update", "fresh", "-H", hosts, "--ssh-option", f"UserKnownHostsFile={known}")
    return known


def test_an_unknown_host_key_fails_the_check_and_names_setup_ssh(
    testbed: Testbed, sparkrun_env: dict[str, str], fresh: Path
) -> None:
    sparkrun_env = own_connections(sparkrun_env)
    code, report = check(sparkrun_env, "--cluster", "fresh")
    lines = lines_by_host(report)
    assert code == 4
    for host in testbed.hosts[:2]:
        assert lines[host]["ssh"]["detail"] == "SSH host key unknown (not in known_hosts)"
        assert lines[host]["ssh"]["fix"].startswith("sparkrun setup ssh --cluster fresh")
        assert lines[host]["docker"]["status"] == "skip"


def test_a_scanned_key_is_never_recorded_without_confirmation(
    testbed: Testbed, sparkrun_env: dict[str, str], fresh: Path
) -> None:
    sparkrun_env = own_connections(sparkrun_env)
    h1, h2 = testbed.hosts[:2]
    r = sparkrun(sparkrun_env, "setup", "ssh", "--cluster", "fresh", timeout=300)
    assert r.returncode == 4 and fresh.read_text() == ""
    assert (
        f"{h1}: ssh: host key not accepted (scanned over the network: ssh-ed25519 {fingerprint_of(testbed, h1)})"
        in r.stderr
    )
    r = sparkrun(sparkrun_env, "setup", "ssh", "--cluster", "fresh", "--accept-host-key", "SHA256:not-the-key")
    assert r.returncode == 4 and fresh.read_text() == ""
    plan = sparkrun(sparkrun_env, "setup", "ssh", "--cluster", "fresh", "--dry-run")
    assert plan.returncode == 0 and fingerprint_of(testbed, h2) in plan.stdout and fresh.read_text() == ""


def test_named_fingerprints_are_recorded_and_the_hosts_then_pass(
    testbed: Testbed, sparkrun_env: dict[str, str], fresh: Path
) -> None:
    sparkrun_env = own_connections(sparkrun_env)
    h1, h2 = testbed.hosts[:2]
    accept = [arg for h in (h1, h2) for arg in ("--accept-host-key", fingerprint_of(testbed, h))]
    r = sparkrun(sparkrun_env, "setup", "ssh", "--cluster", "fresh", *accept, timeout=300)
    assert r.returncode == 0, r.stderr
    recorded = fresh.read_text()
    assert f"{h1} ssh-ed25519 " in recorded and f"{h2} ssh-ed25519 " in recorded
    code, report = check(sparkrun_env, "--cluster", "fresh")
    assert code == 0, report
    again = sparkrun(sparkrun_env, "setup", "ssh", "--cluster", "fresh", "--json", timeout=300)
    assert again.returncode == 0 and fresh.read_text() == recorded


def test_on_a_terminal_the_fingerprint_is_shown_and_confirmed(
    testbed: Testbed, sparkrun_env: dict[str, str], fresh: Path
) -> None:
    sparkrun_env = own_connections(sparkrun_env)
    h1 = testbed.hosts[0]
    ok(sparkrun_env, "cluster", "update", "fresh", "-H", h1)
    code, shown, prompts = on_terminal(sparkrun_env, ["setup", "ssh", "--cluster", "fresh"], {"Record these keys": "y"})
    assert code == 0, shown
    assert fingerprint_of(testbed, h1) in shown and len(prompts) == 1
    assert f"{h1} ssh-ed25519 " in fresh.read_text()
