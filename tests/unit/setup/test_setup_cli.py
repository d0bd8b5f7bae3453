"""`sparkrun setup …` on the command line, with the session's transport replaced by the in-memory fake: the check
table names each failing line's fix and the exit code says whether all passed; dry-runs only read; the old command
names and `setup plugins` still work."""

from __future__ import annotations

import json

import pytest
from setup_fakes import HOSTS, FakeHosts

from sparkrun.api import Session
from sparkrun.cli import main
from sparkrun.clusters import Cluster, save_cluster
from sparkrun.hosts import SshSettings

H1, H2, H3 = HOSTS


def sparkrun(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
        raise SystemExit(0)
    out = capsys.readouterr()
    return int(done.value.code or 0), out.out, out.err


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeHosts:
    hosts = FakeHosts(**{"10_0_0_12": {"docker": "denied permission denied", "docker_member": "no"}})
    save_cluster(Cluster("lab", HOSTS, ssh=SshSettings(user="spark")))
    monkeypatch.setattr(Session, "transport", property(lambda self: hosts.transport))
    return hosts


def test_setup_lists_the_commands_users_know(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = sparkrun(capsys, "setup", "--help")
    assert code == 0
    for name in (
        "check",
        "ssh",
        "docker-group",
        "earlyoom",
        "fix-permissions",
        "clear-cache",
        "cx7",
        "wizard",
        "plugins",
    ):
        assert f"  {name}" in out


def test_setup_plugins_is_still_the_plugins_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = sparkrun(capsys, "setup", "plugins", "list", "--json")
    assert code == 0 and "vllm-distributed" in {p["name"] for p in json.loads(out)}


def test_check_prints_a_line_per_host_and_check_with_the_fix_and_exits_4(
    fake: FakeHosts, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = sparkrun(capsys, "setup", "check", "--cluster", "lab")
    assert code == 4
    row = next(line for line in out.splitlines() if line.startswith(H2) and " docker " in line)
    assert " fail " in row and row.endswith("sparkrun setup docker-group --cluster lab")
    assert len([line for line in out.splitlines() if line.startswith("10.0.0.")]) == 33
    assert f"error: {H2}: docker: spark may not use the docker socket (not in group docker)" in err
    assert "hint: sparkrun setup docker-group --cluster lab; or `sparkrun setup check --fix`" in err


def test_check_json_is_the_report_and_the_exit_code_still_says_it_failed(
    fake: FakeHosts, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _err = sparkrun(capsys, "setup", "check", "--cluster", "lab", "--json")
    data = json.loads(out)
    assert code == 4 and data["ok"] is False and data["summary"]["fail"] == 1


def test_a_dry_run_shows_the_plan_and_changes_nothing(fake: FakeHosts, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = sparkrun(capsys, "setup", "docker-group", "--cluster", "lab", "--dry-run")
    assert code == 0
    assert out.splitlines()[0] == "setup docker-group: plan for 3 host(s) and this machine (nothing has changed)"
    assert f"{H2}" in out and "add spark to group docker (with sudo)" in out and "$ usermod -aG docker spark" in out
    assert f"{H1}" in out and "nothing to do: spark is in group docker" in out
    assert {s.name for _h, s in fake.transport.scripts} == {"setup_check"}


def test_applying_reports_what_changed_where(fake: FakeHosts, capsys: pytest.CaptureFixture[str]) -> None:
    fake.on("setup_host", "@sr changed added spark to group docker (new logins have it)\n")
    code, out, err = sparkrun(capsys, "setup", "docker-group", "--cluster", "lab")
    assert code == 0
    assert f"{H2}: docker-group: added spark to group docker" in err
    assert f"{H1}: docker-group: nothing to do: spark is in group docker" in err
    assert out.strip() == f"setup docker-group: changed 1 host(s) ({H2}), nothing to do on 2"
    assert fake.ran("setup_host") == [H2] and fake.ran("setup_control") == ["localhost"]  # then reconnects


def test_the_wizard_will_not_run_unattended_without_yes(fake: FakeHosts, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = sparkrun(capsys, "setup", "wizard", "--cluster", "lab")
    assert code == 2 and "--yes" in err
    assert fake.transport.scripts == []


def test_a_new_cluster_in_the_wizard_needs_a_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = sparkrun(capsys, "setup", "wizard", "-H", "a,b", "--yes")
    assert code == 3 and "--cluster NAME" in err
