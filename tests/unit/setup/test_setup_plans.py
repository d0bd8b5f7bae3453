"""Setup planners: facts in, a plan out, where a host that needs nothing gets a no-op saying why (so a second run
changes nothing) and a host that cannot be helped is an error for that host only."""

from __future__ import annotations

import pytest
from setup_fakes import HOSTS, FakeHosts, host_key, make_setup, prepared, user_key

from sparkrun.core.plan import Plan
from sparkrun.setup import SetupOptions
from sparkrun.setup.cx7 import netplan_yaml
from sparkrun.setup.mesh import known_names

H1, H2, H3 = HOSTS


def live(plan: Plan) -> list[tuple[str, str]]:
    return [(s.host.address, s.phase) for s in plan.steps if not s.noop]


def noops(plan: Plan) -> dict[str, str]:
    return {s.host.address: s.noop or "" for s in plan.steps if s.noop}


def plan_for(action: str, options: SetupOptions | None = None, **per_host: dict[str, object]):  # type: ignore[no-untyped-def]
    fake = FakeHosts(**per_host)
    setup, _seen = make_setup(fake)
    return setup.plan(action, options or SetupOptions()), fake


@pytest.mark.parametrize("action", ["ssh", "docker-group", "fix-permissions", "earlyoom", "cx7"])
def test_on_prepared_hosts_every_setup_action_is_all_no_ops(action: str) -> None:
    sp, fake = plan_for(action)
    assert not sp.changes and not sp.blocked
    assert set(noops(sp.plan)) == set(HOSTS)
    assert sorted(fake.ran("setup_check")) == list(HOSTS) and len(fake.transport.scripts) == 3  # planning only reads


def test_docker_group_adds_the_user_where_missing_and_reconnects_to_that_host() -> None:
    sp, _ = plan_for("docker-group", **{"10_0_0_12": {"docker": "denied permission denied", "docker_member": "no"}})
    assert live(sp.plan) == [(H2, "docker-group"), ("localhost", "reconnect")]
    step = next(s for s in sp.plan.steps if s.host.address == H2)
    assert step.values["TARGET_USER"] == "spark" and step.values["SUDO"] == "nopasswd"
    assert step.detail == ("usermod -aG docker spark",)
    reconnect = next(s for s in sp.plan.steps if s.phase == "reconnect")
    assert reconnect.values["TARGET"] == H2 and "-O" not in reconnect.values["SSH_ARGV"]
    assert any(str(v).startswith("ControlPath=") for v in reconnect.values["SSH_ARGV"])  # type: ignore[union-attr]
    assert noops(sp.plan) == {H1: "spark is in group docker", H3: "spark is in group docker"}


def test_a_member_whose_login_predates_the_group_only_reconnects() -> None:
    sp, _ = plan_for("docker-group", **{"10_0_0_11": {"docker": "denied permission denied", "docker_member": "yes"}})
    assert live(sp.plan) == [("localhost", "reconnect")]


def test_docker_group_cannot_help_a_host_without_docker_and_says_so() -> None:
    sp, _ = plan_for("docker-group", **{"10_0_0_13": {"docker": "missing docker is not installed", "tool": []}})
    assert [str(e) for e in sp.blocked] == [f"{H3}: docker-group: docker is not installed"]
    assert set(noops(sp.plan)) == {H1, H2}


def test_root_steps_use_the_sudo_the_host_has_and_fail_without_any() -> None:
    sp, _ = plan_for(
        "docker-group",
        **{
            "10_0_0_11": {"docker_member": "no", "sudo": "password sudo: a password is required"},
            "10_0_0_12": {"docker_member": "no", "sudo": "missing"},
        },
    )
    step = next(s for s in sp.plan.steps if s.host.address == H1)
    assert step.values["SUDO"] == "password" and "asks for the password" in step.summary
    assert step.stdin == b""  # no password in a plan: it is asked for only when applying
    assert [str(e) for e in sp.blocked] == [f"{H2}: docker-group: spark is not root and sudo is not installed"]


def test_fix_permissions_targets_the_clusters_cache_and_skips_hosts_that_own_it() -> None:
    sp, _ = plan_for("fix-permissions", **{"10_0_0_12": {"cache_foreign": "/home/spark/.cache/huggingface/hub"}})
    assert live(sp.plan) == [(H2, "fix-permissions")]
    assert sp.plan.steps[1].values["CACHE_DIR"] == "~/.cache/huggingface"
    sp, _ = plan_for(
        "fix-permissions", SetupOptions(cache_dir="/data/hf"), **{"10_0_0_12": {"cache": "exists readonly /data/hf"}}
    )
    assert sp.plan.steps[1].values["CACHE_DIR"] == "/data/hf"


def test_earlyoom_installs_where_missing_and_keeps_an_existing_configuration() -> None:
    sp, _ = plan_for("earlyoom", **{"10_0_0_11": {"earlyoom": "missing inactive "}})
    step = sp.plan.steps[0]
    assert live(sp.plan) == [(H1, "earlyoom")] and step.timeout == 900
    assert step.values["EARLYOOM_ARGS"].startswith("-r 3600 --prefer ^(vllm|")  # type: ignore[union-attr]
    assert noops(sp.plan)[H2] == "earlyoom is installed and running"


def test_earlyoom_with_new_preferences_reconfigures_and_then_is_a_no_op() -> None:
    options = SetupOptions(prefer="^(vllm)$", avoid="^(sshd)$")
    sp, _ = plan_for("earlyoom", options)
    assert [s.values["EARLYOOM_ARGS"] for s in sp.plan.steps] == ["-r 3600 --prefer ^(vllm)$ --avoid ^(sshd)$"] * 3
    done = {"earlyoom": "installed active -r 3600 --prefer ^(vllm)$ --avoid ^(sshd)$"}
    sp, _ = plan_for("earlyoom", options, **{f"10_0_0_{n}": done for n in (11, 12, 13)})
    assert not sp.changes


def test_earlyoom_options_that_would_break_its_arguments_are_refused() -> None:
    from sparkrun.errors import InputError

    with pytest.raises(InputError, match="--prefer"):
        SetupOptions(prefer="a b")
    with pytest.raises(InputError, match="--avoid"):
        SetupOptions(avoid='x"; rm -rf /')


def test_clear_cache_always_runs_everywhere() -> None:
    sp, _ = plan_for("clear-cache")
    assert live(sp.plan) == [(h, "clear-cache") for h in HOSTS]


CX7_DOWN = "rocep1s0f0 1 ACTIVE Ethernet enp1s0f0np0 1500 up -"


def test_cx7_numbers_hosts_in_the_subnet_skipping_taken_addresses_and_keeps_existing_ones() -> None:
    state = {"ib": CX7_DOWN, "cx7_file": "no"}
    sp, _ = plan_for(
        "cx7",
        SetupOptions(subnets=("192.168.177.0/24",)),
        **{
            "10_0_0_11": state,
            "10_0_0_12": {**state, "addr": ["10.0.0.12/24 eth0", "192.168.177.2/24 wlan0"]},
            "10_0_0_13": {"ib": "rocep1s0f0 1 ACTIVE Ethernet enp1s0f0np0 9000 up 192.168.177.7/24", "cx7_file": "no"},
        },
    )
    addrs = {s.host.address: s.values.get("CX7_ADDRS") for s in sp.plan.steps}
    assert addrs == {H1: ["192.168.177.1/24"], H2: ["192.168.177.3/24"], H3: ["192.168.177.7/24"]}
    h1 = sp.plan.steps[0]
    assert h1.values["NETPLAN_FILE"] == "/etc/netplan/70-sparkrun-cx7.yaml" and h1.values["CX7_MTU"] == "9000"


def test_cx7_infers_the_subnet_the_other_hosts_use_and_needs_one_otherwise() -> None:
    sp, _ = plan_for("cx7", **{"10_0_0_13": {"ib": CX7_DOWN, "cx7_file": "no"}})
    assert live(sp.plan) == [(H3, "cx7")] and sp.plan.steps[2].values["CX7_ADDRS"] == ["10.0.1.3/24"]
    alone = {"ib": CX7_DOWN, "cx7_file": "no"}
    sp, _ = plan_for("cx7", **{f"10_0_0_{n}": alone for n in (11, 12, 13)})
    assert [e.cause for e in sp.blocked] == ["enp1s0f0np0 has no IPv4 address and no subnet was given"] * 3
    assert "--subnet" in (sp.blocked[0].hint or "")


def test_cx7_never_renumbers_an_address_outside_the_subnet_without_force() -> None:
    sp, _ = plan_for("cx7", SetupOptions(subnets=("192.168.177.0/24",)))
    assert [e.cause for e in sp.blocked][:1] == ["enp1s0f0np0 has 10.0.1.11/24, outside 192.168.177.0/24"]
    sp, _ = plan_for("cx7", SetupOptions(subnets=("192.168.177.0/24",), force=True))
    assert not sp.blocked and sp.plan.steps[0].values["CX7_ADDRS"] == ["192.168.177.1/24"]


def test_cx7_is_a_no_op_only_when_saved_too() -> None:
    sp, _ = plan_for("cx7", **{"10_0_0_11": {"cx7_file": "no"}})
    assert live(sp.plan) == [(H1, "cx7")]  # right at runtime, but not yet written to netplan


def test_netplan_file_sets_addresses_and_mtu_per_interface() -> None:
    text = netplan_yaml([("enp1s0f0np0", "192.168.177.1/24"), ("enP2p1s0f1np1", "192.168.178.1/24")], 9000)
    import yaml

    doc = yaml.safe_load(text)
    assert doc["network"]["ethernets"]["enp1s0f0np0"] == {
        "dhcp4": False,
        "addresses": ["192.168.177.1/24"],
        "mtu": 9000,
    }
    assert doc["network"]["ethernets"]["enP2p1s0f1np1"]["addresses"] == ["192.168.178.1/24"]


def test_ssh_mesh_on_hosts_without_keys_makes_keys_then_trusts_everyone() -> None:
    no_mesh = {"userkey": None, "mesh": [f"{H2} hostkey Host key verification failed.", f"{H3} hostkey x"]}
    sp, _ = plan_for("ssh", **{"10_0_0_11": no_mesh})
    assert live(sp.plan) == [(H1, "ssh keys"), (H1, "ssh trust"), (H2, "ssh trust"), (H3, "ssh trust")]
    trust = next(s for s in sp.plan.steps if s.phase == "ssh trust")
    authorized = list(trust.values["AUTHORIZED"])  # type: ignore[arg-type]
    assert authorized[0] == f"<the key {H1} gets in the keygen step>" and authorized[1:] == [user_key(H2), user_key(H3)]
    known = list(trust.values["KNOWN"])  # type: ignore[arg-type]
    assert (
        f"{H2} {host_key(H2)}" in known and f"spark-12 {host_key(H2)}" in known and f"10.0.1.12 {host_key(H2)}" in known
    )


def test_ssh_mesh_touches_only_the_hosts_of_a_broken_pair() -> None:
    sp, _ = plan_for(
        "ssh",
        **{"10_0_0_11": {"mesh": [f"{H2} auth Permission denied (publickey).", f"{H3} ok "]}},
    )
    assert live(sp.plan) == [(H1, "ssh trust"), (H2, "ssh trust")]
    assert noops(sp.plan)[H3] == "reaches and is reached by every host"


def test_known_host_names_carry_the_port_and_optionally_the_ips() -> None:
    fake = FakeHosts()
    setup, _ = make_setup(fake, port=2222)
    facts = setup.gather(SetupOptions())
    assert known_names(facts[H1], discover_ips=True) == ["[10.0.0.11]:2222", "[spark-11]:2222", "[10.0.1.11]:2222"]
    setup, _ = make_setup(FakeHosts())
    facts = setup.gather(SetupOptions())
    assert known_names(facts[H1], discover_ips=False) == [H1, "spark-11"]


def test_a_host_whose_own_keys_could_not_be_read_is_left_out_of_the_mesh() -> None:
    sp, _ = plan_for("ssh", **{"10_0_0_12": {"hostkey": None, "mesh": [f"{H1} hostkey x", f"{H3} ok "]}})
    assert [str(e) for e in sp.blocked] == [f"{H2}: ssh: could not read this host's own SSH host keys"]
    known = next(s for s in sp.plan.steps if not s.noop).values["KNOWN"]
    assert not any(host_key(H2) in k for k in known)  # type: ignore[union-attr]


def test_unreached_hosts_are_listed_and_the_others_still_planned() -> None:
    from setup_fakes import unreachable

    fake = FakeHosts()
    fake.states[H3] = unreachable(H3, "SSH connection timed out")
    fake.states[H1] = prepared(H1, earlyoom="missing inactive ")
    setup, _ = make_setup(fake)
    sp = setup.plan("earlyoom", SetupOptions())
    assert [str(e) for e in sp.blocked] == [f"{H3}: ssh: SSH connection timed out"]
    assert live(sp.plan) == [(H1, "earlyoom")]
