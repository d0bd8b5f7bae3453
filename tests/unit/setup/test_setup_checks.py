"""`setup check`: one read-only round trip per host, one line per host and check, and every unprepared state is a
failing line that names the exact command that fixes it."""

from __future__ import annotations

import time

import pytest
from setup_fakes import HOSTS, FakeHosts, make_setup, prepared, unreachable

from sparkrun.hosts import Host
from sparkrun.setup import CHECKS, Limits, Origin, SetupOptions
from sparkrun.setup.checks import evaluate
from sparkrun.setup.facts import parse_check
from sparkrun.transport.base import Result
from sparkrun.transport.fake import events
from sparkrun.transport.ssh import AUTH_FAILED, HOST_KEY_UNKNOWN

H1, H2, H3 = HOSTS


def lines_of(report: object, host: str) -> dict[str, object]:
    return {line.check: line for line in report.lines if line.host == host}  # type: ignore[attr-defined]


def test_a_prepared_cluster_passes_every_check_in_one_round_trip_per_host() -> None:
    fake = FakeHosts()
    setup, _seen = make_setup(fake)
    report = setup.check(SetupOptions())
    assert [s.name for _h, s in fake.transport.scripts] == ["setup_check"] * 3  # nothing else ran: read-only
    assert report.ok and [line.check for line in report.lines] == list(CHECKS) * 3
    assert {line.status for line in report.lines} == {"ok"}
    assert report.to_json()["summary"] == {"ok": 33, "warn": 0, "fail": 0, "skip": 0}


def test_the_check_script_gets_the_peers_and_tries_them_without_prompts_or_writes() -> None:
    fake = FakeHosts()
    setup, _seen = make_setup(fake, port=2222)
    setup.check(SetupOptions(gpu_image="nvcr.io/nvidia/cuda:13.0-base"))
    text = fake.scripts("setup_check")[0].text
    assert f"PEERS=({H2} {H3})" in text
    for option in ("BatchMode=yes", "StrictHostKeyChecking=yes", "UpdateHostKeys=no", "ControlPath=none"):
        assert option in text
    assert "'-p' 2222" in text or "-p 2222" in text
    assert "readonly GPU_IMAGE=nvcr.io/nvidia/cuda:13.0-base" in text
    assert "readonly HF_CACHE='~/.cache/huggingface'" in text


@pytest.mark.parametrize(
    ("change", "check", "fix"),
    [
        (
            {"docker": "denied permission denied while trying to connect", "docker_member": "no"},
            "docker",
            "sparkrun setup docker-group --cluster lab",
        ),
        (
            {"cache_foreign": "/home/spark/.cache/huggingface/hub"},
            "cache",
            "sparkrun setup fix-permissions --cluster lab",
        ),
        ({"earlyoom": "missing inactive "}, "earlyoom", "sparkrun setup earlyoom --cluster lab"),
        ({"earlyoom": "installed inactive -r 3600"}, "earlyoom", "sparkrun setup earlyoom --cluster lab"),
        (
            {"mesh": [f"{H2} hostkey Host key verification failed.", f"{H3} ok "]},
            "mesh",
            "sparkrun setup ssh --cluster lab",
        ),
        (
            {"mesh": [f"{H2} auth Permission denied (publickey).", f"{H3} ok "]},
            "mesh",
            "sparkrun setup ssh --cluster lab",
        ),
        (
            {"ib": "rocep1s0f0 1 ACTIVE Ethernet enp1s0f0np0 1500 up -"},
            "cx7",
            "sparkrun setup cx7 --cluster lab --subnet 10.0.1.0/24",
        ),
        (
            {"ib": "rocep1s0f0 1 ACTIVE Ethernet enp1s0f0np0 1500 up 10.0.1.11/24"},
            "cx7",
            "sparkrun setup cx7 --cluster lab",
        ),
    ],
)
def test_each_unprepared_state_fails_with_the_setup_command_that_fixes_it(
    change: dict[str, str], check: str, fix: str
) -> None:
    fake = FakeHosts(**{"10_0_0_11": change})
    setup, _seen = make_setup(fake)
    report = setup.check(SetupOptions())
    line = lines_of(report, H1)[check]
    assert line.status in ("fail", "warn") and line.fix == fix  # type: ignore[attr-defined]
    assert line.action is not None  # type: ignore[attr-defined]  # --fix may run it
    others = [x for x in report.lines if x.host != H1]
    assert all(x.status == "ok" for x in others if x.check != "mesh")


@pytest.mark.parametrize(
    ("change", "check", "needle"),
    [
        ({"tool": ["bash yes", "curl no", "tar yes"]}, "tools", "sudo apt-get install -y curl"),
        (
            {"docker": "missing docker is not installed", "gpu_container": "skip docker is not usable"},
            "docker",
            "install Docker Engine",
        ),
        ({"gpu_container": "fail --gpus could not select device driver"}, "gpu", "nvidia-ctk runtime configure"),
        ({"disk": f"{64 * 1024} {48 * 1024} {16 * 1024} tmpfs /home/spark/.cache/huggingface"}, "disk", "du -sh"),
        ({"clock": f"{time.time() + 300:.3f}"}, "clock", "timedatectl set-ntp true"),
    ],
)
def test_states_sparkrun_cannot_fix_name_the_command_to_run_by_hand(
    change: dict[str, str], check: str, needle: str
) -> None:
    setup, _seen = make_setup(FakeHosts(**{"10_0_0_11": change}))
    line = lines_of(setup.check(SetupOptions()), H1)[check]
    assert line.status == "fail" and needle in (line.fix or "")  # type: ignore[attr-defined]
    assert line.action is None  # type: ignore[attr-defined]  # never applied by --fix


def test_a_nearly_full_cache_filesystem_fails_below_the_limit_and_warns_when_mostly_used() -> None:
    gib = 1024 * 1024
    full = prepared(H1, disk=f"{100 * gib} {95 * gib} {5 * gib} ext4 /")
    busy = prepared(H1, disk=f"{1000 * gib} {920 * gib} {80 * gib} ext4 /")
    for state, status in ((full, "fail"), (busy, "warn")):
        fake = FakeHosts()
        fake.states[H1] = state
        setup, _seen = make_setup(fake)
        assert lines_of(setup.check(SetupOptions()), H1)["disk"].status == status  # type: ignore[attr-defined]
    setup, _seen = make_setup(fake)
    limits = Limits(min_free_gib=100)
    assert lines_of(setup.check(SetupOptions(limits=limits)), H1)["disk"].status == "fail"  # type: ignore[attr-defined]


def test_clock_skew_counts_only_beyond_the_round_trip() -> None:
    r = Result(H1, "setup_check", 0, events(("clock", "1000.5")), "", 1.0)
    assert parse_check(Host(H1), r, (1000.0, 1001.0)).skew == 0.0
    assert parse_check(Host(H1), r, (990.0, 995.0)).skew == pytest.approx(5.5)
    assert parse_check(Host(H1), r, (1010.0, 1011.0)).skew == pytest.approx(-9.5)


def test_an_unreached_host_fails_ssh_with_its_cause_and_skips_the_rest() -> None:
    fake = FakeHosts()
    fake.states[H2] = unreachable(H2, HOST_KEY_UNKNOWN)
    fake.states[H3] = unreachable(H3, AUTH_FAILED)
    setup, _seen = make_setup(fake)
    report = setup.check(SetupOptions())
    h2, h3 = lines_of(report, H2), lines_of(report, H3)
    assert h2["ssh"].status == "fail" and h2["ssh"].fix.startswith("sparkrun setup ssh --cluster lab")  # type: ignore[attr-defined]
    assert h3["ssh"].fix == f"ssh-copy-id spark@{H3}; then sparkrun setup ssh --cluster lab"  # type: ignore[attr-defined]
    assert {line.status for c, line in h2.items() if c != "ssh"} == {"skip"}  # type: ignore[attr-defined]
    assert not report.ok and report.to_json()["hosts"][1] == {"host": H2, "reachable": False, "error": HOST_KEY_UNKNOWN}


def test_fix_commands_name_the_hosts_the_way_the_user_did() -> None:
    facts = {H1: parse_check(Host(H1), Result(H1, "setup_check", 0, "", "", 0.1), (0, 0))}
    origins = {
        Origin(hosts=f"{H1},{H2}"): f"sparkrun setup earlyoom -H {H1},{H2}",
        Origin(hosts_file="my hosts.txt", user="ops"): "sparkrun setup earlyoom --hosts-file 'my hosts.txt' --user ops",
        Origin(): "sparkrun setup earlyoom",
    }
    for origin, fix in origins.items():
        line = next(x for x in evaluate(facts, origin, Limits()) if x.check == "earlyoom")
        assert line.fix == fix


def test_the_json_report_is_stable() -> None:
    fake = FakeHosts(**{"10_0_0_12": {"earlyoom": "missing inactive "}})
    setup, _seen = make_setup(fake)
    data = setup.check(SetupOptions()).to_json()
    assert set(data) == {"ok", "summary", "seconds", "hosts", "checks"}
    assert data["ok"] is False and data["summary"]["fail"] == 1
    assert set(data["hosts"][0]) == {
        "host",
        "reachable",
        "error",
        "user",
        "hostname",
        "sudo",
        "docker",
        "clock_skew_s",
        "addresses",
    }
    failing = [c for c in data["checks"] if c["status"] == "fail"]
    assert failing == [
        {
            "host": H2,
            "check": "earlyoom",
            "status": "fail",
            "detail": "not installed (an OOM can hang a DGX Spark)",
            "fix": "sparkrun setup earlyoom --cluster lab",
            "fixable": True,
        }
    ]


def test_docker_that_works_only_through_an_older_login_fails_and_docker_group_repairs_it() -> None:
    """A shared SSH connection keeps the groups of its login: after the user left group docker it still works there,
    but a new login (every later command's) would not have it."""
    fake = FakeHosts(**{"10_0_0_11": {"docker_member": "no"}})  # this login: "spark sudo docker"
    setup, _seen = make_setup(fake)
    line = lines_of(setup.check(SetupOptions()), H1)["docker"]
    assert line.status == "fail" and "no longer in group docker" in line.detail  # type: ignore[attr-defined]
    assert line.fix == "sparkrun setup docker-group --cluster lab"  # type: ignore[attr-defined]
    plan = setup.plan("docker-group", SetupOptions())
    assert [(s.host.address, s.phase) for s in plan.plan.steps if not s.noop] == [
        (H1, "docker-group"),
        ("localhost", "reconnect"),
    ]


def test_sudo_that_needs_a_password_is_a_warning_not_a_failure() -> None:
    setup, _seen = make_setup(FakeHosts(**{"10_0_0_11": {"sudo": "password sudo: a password is required"}}))
    report = setup.check(SetupOptions())
    assert lines_of(report, H1)["sudo"].status == "warn" and report.ok  # type: ignore[attr-defined]
