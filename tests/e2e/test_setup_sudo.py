"""The sudo password on the test cluster: `sudo -n` first; only a host whose sudo really asks gets a prompt, once,
on the terminal; the password is never echoed and never appears in sparkrun's output, its files, the hosts' logs or
any process list on the hosts while the changes run."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from e2e.cli import sparkrun
from e2e.setup_helpers import check, failing, files_containing, on_terminal, own_connections, process_lists
from testbed.harness import USER, SetState, Testbed

pytestmark = pytest.mark.e2e


def test_a_password_is_asked_once_per_host_and_appears_in_no_output_log_or_process_list(
    testbed: Testbed, sparkrun_env: dict[str, str], spark_cluster: str, host_state: SetState
) -> None:
    sparkrun_env = own_connections(sparkrun_env)
    secret = f"tb-{secrets.token_hex(6)}"
    h1, h2 = testbed.hosts[:2]
    for host in (h1, h2):
        host_state(host, sudo="password", password=secret, docker_group=False, earlyoom=False)
    args = ["-v", "setup", "check", "--cluster", spark_cluster, "--fix"]
    with process_lists(testbed, [h1, h2]) as seen:
        code, shown, prompts = on_terminal(sparkrun_env, args, {"sudo password for": secret})
    assert code == 0, shown
    assert [p.split(" (")[0].rstrip(":") for p in prompts] == [f"sudo password for {USER}@{h}" for h in (h1, h2)]
    assert secret not in shown
    assert len(seen) > 4 and not [ps for ps in seen if secret in ps]
    places = [Path(sparkrun_env["SPARKRUN_CACHE_DIR"]), Path(sparkrun_env["SPARKRUN_CONFIG_DIR"])]
    places += [testbed.state_dir / f"h{testbed.index(h)}" / "log" for h in (h1, h2)]
    assert [f for p in places if p.exists() for f in files_containing(p, secret)] == []
    # and the changes were made, with sudo, on both hosts
    for host in (h1, h2):
        assert "docker" in testbed.ssh(host, "id -nG", user=USER).stdout.split()
        assert testbed.ssh(host, "systemctl is-active earlyoom").stdout.strip() == "active"


def test_a_refused_password_changes_nothing_and_says_so(
    testbed: Testbed, sparkrun_env: dict[str, str], spark_cluster: str, host_state: SetState
) -> None:
    sparkrun_env = own_connections(sparkrun_env)
    h1 = testbed.hosts[0]
    host_state(h1, sudo="password", password="the-right-one", docker_group=False)
    args = ["setup", "docker-group", "--cluster", spark_cluster]
    code, shown, prompts = on_terminal(sparkrun_env, args, {"sudo password for": "a-wrong-one"})
    assert code == 4 and len(prompts) == 1
    assert f"{h1}: sudo: the sudo password was refused" in shown
    assert "docker" not in testbed.ssh(h1, "id -nG", user=USER).stdout.split()


def test_without_a_terminal_a_needed_password_is_an_error_before_any_change(
    testbed: Testbed, sparkrun_env: dict[str, str], spark_cluster: str, host_state: SetState
) -> None:
    sparkrun_env = own_connections(sparkrun_env)
    h1 = testbed.hosts[0]
    host_state(h1, sudo="password", password="pw-1", earlyoom=False)
    r = sparkrun(sparkrun_env, "setup", "earlyoom", "--cluster", spark_cluster, timeout=300)
    assert r.returncode == 4
    assert f"error: {h1}: sudo: sudo needs a password for {USER}, and there is no terminal to ask on" in r.stderr
    _code, report = check(sparkrun_env, "--cluster", spark_cluster)
    assert (h1, "earlyoom") in failing(report)
