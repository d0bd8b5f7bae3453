"""`setup wizard --yes` on the test cluster: three fully unprepared hosts (no docker group, no SSH mesh, a root-owned
cache, no earlyoom, an unaddressed CX7 port) to a passing `setup check` and a successful `run`; run again, it changes
nothing. A new cluster is created and becomes the default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from e2e.cli import IMAGE, ok, run_json, sparkrun
from e2e.setup_helpers import check, failing, own_connections
from testbed.harness import USER, SetState, Testbed

pytestmark = pytest.mark.e2e
CX7_SUBNET = "10.213.0.160/28"
UNPREPARED = {"docker_group": False, "mesh": False, "hf_cache": "root-owned", "earlyoom": False, "cx7": "unconfigured"}


def test_the_wizard_takes_three_unprepared_hosts_to_a_passing_check_and_a_run(
    testbed: Testbed, sparkrun_env: dict[str, str], host_state: SetState
) -> None:
    sparkrun_env = own_connections(sparkrun_env)
    hosts = testbed.hosts[:3]
    for host in hosts:
        host_state(host, **UNPREPARED)  # type: ignore[arg-type]
    testbed.cluster_file(Path(sparkrun_env["SPARKRUN_CONFIG_DIR"]), user=USER, name="lab3")
    ok(sparkrun_env, "cluster", "update", "lab3", "-H", ",".join(hosts))
    code, report = check(sparkrun_env, "--cluster", "lab3")
    assert code == 4
    assert {c for _h, c in failing(report)} == {"docker", "mesh", "cache", "earlyoom", "cx7"}

    r = sparkrun(sparkrun_env, "setup", "wizard", "--cluster", "lab3", "--yes", "--cx7-subnet", CX7_SUBNET, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "every check passed" in r.stdout
    code, report = check(sparkrun_env, "--cluster", "lab3")
    assert code == 0, failing(report)

    result = run_json(sparkrun_env, "qwen3-1.7b-vllm", "--cluster", "lab3", "--image", IMAGE, timeout=300)
    try:
        assert result["ready"] and result["hosts"][0] in hosts
    finally:
        ok(sparkrun_env, "stop", result["job"], "--cluster", "lab3")

    again = sparkrun(
        sparkrun_env, "setup", "wizard", "--cluster", "lab3", "--yes", "--json", "--cx7-subnet", CX7_SUBNET
    )
    data = json.loads(again.stdout)
    assert again.returncode == 0 and data["ok"]
    assert [s["skipped"] for s in data["steps"]] == ["nothing to do"] * 5


def test_the_wizard_creates_a_new_cluster_and_makes_it_the_default(
    testbed: Testbed, sparkrun_env: dict[str, str]
) -> None:
    sparkrun_env = own_connections(sparkrun_env)
    h1 = testbed.hosts[0]
    config = Path(sparkrun_env["SPARKRUN_CONFIG_DIR"])
    plan = sparkrun(sparkrun_env, "setup", "wizard", "--cluster", "newlab", "-H", h1, "-u", USER, "--dry-run")
    assert plan.returncode == 0 and not (config / "clusters" / "newlab.yaml").exists()
    r = sparkrun(sparkrun_env, "setup", "wizard", "--cluster", "newlab", "-H", h1, "-u", USER, "--yes", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    saved = yaml.safe_load((config / "clusters" / "newlab.yaml").read_text())
    assert saved["hosts"] == [h1] and saved["ssh"]["user"] == USER
    assert yaml.safe_load((config / "config.yaml").read_text())["default_cluster"] == "newlab"
    code, _report = check(sparkrun_env)  # the default cluster now
    assert code == 0
