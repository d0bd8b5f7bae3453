"""Host keys on the test cluster: a host whose key is not in known_hosts, or whose recorded key differs from the one
it presents, is refused with a clear error naming the host, the step, the cause and the fix; nothing is accepted
silently (known_hosts is unchanged afterwards), nothing starts."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from e2e.cli import IMAGE, sparkrun
from e2e.faultkit import error_line, left_everywhere, tracebacks
from reliability_report import CaseLog
from testbed.harness import Testbed

pytestmark = pytest.mark.e2e


@pytest.fixture
def env(sparkrun_env: dict[str, str], testbed: Testbed, tmp_path: Path) -> Iterator[dict[str, str]]:
    # A fresh ControlMaster directory: a master opened earlier would be reused without checking the key again.
    yield dict(sparkrun_env, SPARKRUN_SSH_CONTROL_DIR=str(tmp_path / "cm"))


def _cluster(env: dict[str, str], testbed: Testbed, name: str, known_hosts: Path) -> None:
    source = yaml.safe_load((Path(env["SPARKRUN_CONFIG_DIR"]) / "clusters" / "testbed.yaml").read_text())
    source["name"] = name
    source["hosts"] = [testbed.hosts[0]]
    source["ssh"]["options"] = {
        "UserKnownHostsFile": str(known_hosts),
        "GlobalKnownHostsFile": "/dev/null",
        "IdentitiesOnly": "yes",
    }
    (Path(env["SPARKRUN_CONFIG_DIR"]) / "clusters" / f"{name}.yaml").write_text(yaml.safe_dump(source))


def test_unknown_and_changed_host_keys_are_refused_with_the_fix(
    env: dict[str, str], testbed: Testbed, tmp_path: Path, reliability: CaseLog
) -> None:
    host = testbed.hosts[0]
    unknown = tmp_path / "known_hosts.empty"
    unknown.write_text("")
    changed = tmp_path / "known_hosts.changed"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "impostor")], check=True)
    key_type, key = (tmp_path / "impostor.pub").read_text().split(" ", 2)[:2]
    changed.write_text(f"{host} {key_type} {key}\n")
    before = {unknown: unknown.read_text(), changed: changed.read_text()}
    _cluster(env, testbed, "unknown-key", unknown)
    _cluster(env, testbed, "changed-key", changed)
    cases = {
        "unknown-key": ("SSH host key unknown", "ssh-keyscan", "a host whose key is not in known_hosts"),
        "changed-key": ("SSH HOST KEY CHANGED", "ssh-keygen -R", "a host whose key differs from the recorded one"),
    }
    for cluster, (cause, fix, title) in cases.items():
        r = sparkrun(env, "run", "qwen3-1.7b-vllm", "--cluster", cluster, "--image", IMAGE, "--no-follow")
        status = sparkrun(env, "status", "--json", "--cluster", cluster)
        line = error_line(r.stderr)
        reliability.case(
            title,
            suite="hostkeys",
            phase="probe",
            fault=title,
            checked="exit 4 naming the host, the probe and the cause, a hint with the fix; `status` lists it as "
            "unreachable with the same cause; known_hosts unchanged; nothing started",
            exit_code=r.returncode,
            cause=line,
            tracebacks=tracebacks(r.stderr, status.stderr),
        )
        assert r.returncode == 4, r.stderr
        assert line.startswith(f"error: {host}: probe: {cause}"), r.stderr
        assert fix in r.stderr.split("hint: ", 1)[1], r.stderr
        assert status.returncode == 6 and cause in status.stdout, status.stdout
    assert {p: p.read_text() for p in before} == before  # nothing was accepted into known_hosts
    assert left_everywhere(testbed) == 0
