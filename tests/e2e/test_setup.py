"""`sparkrun setup` on the test cluster, against hosts put into real unprepared states (scripts/testbed.sh `state`):
`check` reports each state with its fix, `--fix` or the named command repairs it on the host for real, a second run
changes nothing, and then `check` passes."""

from __future__ import annotations

import json

import pytest

from e2e.cli import sparkrun
from e2e.setup_helpers import SETUP_TIMEOUT, check, failing, lines_by_host, own_connections
from testbed.harness import USER, SetState, Testbed

pytestmark = pytest.mark.e2e
CX7_SUBNET = "10.213.0.160/28"  # inside the testbed's subnet, on the CX7 fabric (scripts/testbed/README.md)


def test_a_prepared_cluster_passes_every_check_as_root_and_as_the_user(
    testbed: Testbed, sparkrun_env: dict[str, str], spark_cluster: str
) -> None:
    sparkrun_env = own_connections(sparkrun_env)
    for cluster in ("testbed", spark_cluster):
        code, report = check(sparkrun_env, "--cluster", cluster)
        assert code == 0 and report["ok"], failing(report)
        lines = lines_by_host(report)
        assert {lines[h]["gpu"]["status"] for h in testbed.hosts} == {"ok"}
        assert {lines[h]["mesh"]["status"] for h in testbed.hosts} == {"ok"}


def test_check_reports_every_unprepared_state_with_its_fix_and_fix_repairs_what_is_safe(
    testbed: Testbed, sparkrun_env: dict[str, str], spark_cluster: str, host_state: SetState
) -> None:
    sparkrun_env = own_connections(sparkrun_env)
    h1, h2, h3, h4 = testbed.hosts[:4]
    host_state(h1, docker_group=False, earlyoom=False)
    host_state(h2, hf_cache="root-owned", mesh=False)
    host_state(h3, cx7="unconfigured")
    host_state(h4, cache_size="64M", cache_fill="48M", clock=300)
    cmd = f"sparkrun setup {{}} --cluster {spark_cluster}"

    code, report = check(sparkrun_env, "--cluster", spark_cluster)
    assert code == 4 and report["ok"] is False
    lines = lines_by_host(report)
    expected_fail = {
        (h1, "docker"): cmd.format("docker-group"),
        (h1, "earlyoom"): cmd.format("earlyoom"),
        (h2, "cache"): cmd.format("fix-permissions"),
        (h2, "mesh"): cmd.format("ssh"),
        (h3, "cx7"): cmd.format("cx7") + " --subnet CIDR",
        (h4, "clock"): "sudo timedatectl set-ntp true   (or fix chrony/ntpd), then check again",
    }
    for (host, name), fix in expected_fail.items():
        assert lines[host][name]["status"] == "fail" and lines[host][name]["fix"] == fix, lines[host][name]
    assert lines[h4]["disk"]["status"] == "fail" and "du -sh" in lines[h4]["disk"]["fix"]
    assert "(tmpfs), below 10 GiB" in lines[h4]["disk"]["detail"]
    assert "300" in lines[h4]["clock"]["detail"] or "ahead" in lines[h4]["clock"]["detail"]
    # the other hosts cannot reach h2 (its key is nobody's, and it knows no host key)
    assert lines[h1]["mesh"]["status"] == "fail" and h2 in lines[h1]["mesh"]["detail"]
    assert failing(report) >= set(expected_fail) | {(h4, "disk")}
    table = sparkrun(sparkrun_env, "setup", "check", "--cluster", spark_cluster, timeout=SETUP_TIMEOUT)
    assert table.returncode == 4 and cmd.format("docker-group") in table.stdout

    fixed = sparkrun(
        sparkrun_env, "setup", "check", "--cluster", spark_cluster, "--fix", "--json", timeout=SETUP_TIMEOUT
    )
    data = json.loads(fixed.stdout)
    assert [a["action"] for a in data["applied"]] == ["ssh", "docker-group", "fix-permissions", "earlyoom"], (
        fixed.stderr
    )
    assert failing(data["after"]) == {(h3, "cx7"), (h4, "disk"), (h4, "clock")}, data["after"]["checks"]
    # for real, on the hosts
    assert "docker" in testbed.ssh(h1, "id -nG", user=USER).stdout.split()
    assert testbed.ssh(h1, "systemctl is-active earlyoom").stdout.strip() == "active"
    assert testbed.ssh(h2, "stat -c %U ~/.cache/huggingface", user=USER).stdout.strip() == USER
    assert (
        testbed.ssh(h2, f"ssh -o BatchMode=yes {h1} hostname", user=USER).stdout.strip() == f"tb-h{testbed.index(h1)}"
    )
    assert testbed.ssh(h1, f"ssh -o BatchMode=yes {h2} id -un", user=USER).stdout.strip() == USER

    again = sparkrun(
        sparkrun_env, "setup", "check", "--cluster", spark_cluster, "--fix", "--json", timeout=SETUP_TIMEOUT
    )
    assert json.loads(again.stdout)["applied"] == []  # idempotent: nothing left that --fix may change


def test_named_commands_show_a_plan_repair_once_and_then_change_nothing(
    testbed: Testbed, sparkrun_env: dict[str, str], spark_cluster: str, host_state: SetState
) -> None:
    sparkrun_env = own_connections(sparkrun_env)
    h1, h2, h3, h4 = testbed.hosts[:4]
    host_state(h1, docker_group=False)
    host_state(h2, earlyoom=False)
    host_state(h3, hf_cache="root-owned", cx7="unconfigured")
    host_state(h4, cx7="unconfigured")
    where = ("--cluster", spark_cluster)
    commands = {
        "docker-group": [],
        "earlyoom": ["--prefer", "^(vllm|python3)$"],
        "fix-permissions": [],
        "cx7": ["--subnet", CX7_SUBNET],
    }
    changed = {"docker-group": [h1], "earlyoom": sorted(testbed.hosts[:4]), "fix-permissions": [h3], "cx7": [h3, h4]}
    for name, extra in commands.items():
        plan = sparkrun(sparkrun_env, "setup", name, *where, *extra, "--dry-run", "--json", timeout=SETUP_TIMEOUT)
        assert plan.returncode == 0, plan.stderr
        live = sorted(
            s["host"] for s in json.loads(plan.stdout)["steps"] if "noop" not in s and s["host"] != "localhost"
        )
        assert live == changed[name], (name, plan.stdout)
        first = sparkrun(sparkrun_env, "setup", name, *where, *extra, "--json", timeout=SETUP_TIMEOUT)
        assert first.returncode == 0, first.stderr
        assert sorted(h for h in json.loads(first.stdout)["changed_hosts"] if h != "localhost") == changed[name]
        second = sparkrun(sparkrun_env, "setup", name, *where, *extra, "--json", timeout=SETUP_TIMEOUT)
        assert second.returncode == 0 and json.loads(second.stdout)["changed_hosts"] == [], (name, second.stdout)
    # the CX7 ports are configured for real: addressed, MTU 9000, saved with netplan, and they reach each other
    for host in (h3, h4):
        assert " mtu 9000 " in testbed.ssh(host, "ip -o link show enp1s0f0np0").stdout
        assert "10.213.0.16" in testbed.ssh(host, "ip -4 -o addr show enp1s0f0np0").stdout
        assert "enp1s0f0np0" in testbed.ssh(host, "cat /etc/netplan/70-sparkrun-cx7.yaml").stdout
    other = testbed.ssh(h4, "ip -4 -o addr show enp1s0f0np0").stdout.split()[3].split("/")[0]
    assert testbed.ssh(h3, f"busybox ping -c1 -W2 {other}", check=False).returncode == 0
    assert "--prefer ^(vllm|python3)$" in testbed.ssh(h2, "cat /etc/default/earlyoom").stdout
    code, report = check(sparkrun_env, *where)
    assert code == 0, failing(report)


def test_clear_cache_drops_the_page_cache_on_every_host(
    testbed: Testbed, sparkrun_env: dict[str, str], spark_cluster: str
) -> None:
    sparkrun_env = own_connections(sparkrun_env)
    plan = sparkrun(sparkrun_env, "setup", "clear-cache", "--cluster", spark_cluster, "-n")
    assert plan.returncode == 0 and plan.stdout.count("drop the page cache (with sudo)") == len(testbed.hosts)
    r = sparkrun(sparkrun_env, "setup", "clear-cache", "--cluster", spark_cluster, timeout=SETUP_TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("dropped the page cache") == len(testbed.hosts)


def test_an_unreachable_host_fails_its_ssh_line_and_the_others_are_still_checked(
    testbed: Testbed, sparkrun_env: dict[str, str]
) -> None:
    sparkrun_env = own_connections(sparkrun_env)
    hosts = f"{testbed.hosts[0]},10.213.0.201"
    r = sparkrun(sparkrun_env, "setup", "check", "--cluster", "testbed", "-H", hosts, "--json", timeout=SETUP_TIMEOUT)
    data = json.loads(r.stdout)
    lines = lines_by_host(data)
    assert r.returncode == 4
    assert lines["10.213.0.201"]["ssh"]["status"] == "fail" and "SSH" in lines["10.213.0.201"]["ssh"]["detail"]
    assert lines[testbed.hosts[0]]["docker"]["status"] == "ok"
