"""Host selection and cluster files."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparkrun.clusters import (
    Cluster,
    ContainerSettings,
    apply_changes,
    cluster_from_mapping,
    cluster_to_mapping,
    load_cluster,
    resolve_hosts,
    save_cluster,
    set_default_cluster,
)
from sparkrun.config import load_user_config
from sparkrun.errors import ConfigError, InputError
from sparkrun.hosts import SshSettings, is_local_address, parse_host_list


def test_host_lists_split_on_commas_and_spaces_never_into_characters() -> None:
    assert parse_host_list("a,b c", where="x") == ("a", "b", "c")
    assert parse_host_list("10.0.0.1", where="x") == ("10.0.0.1",)


@pytest.mark.parametrize("bad", ["a,a", "-oProxyCommand=x", "a;b", "user@host"])
def test_bad_host_lists_are_rejected_with_the_offending_host(bad: str) -> None:
    with pytest.raises(InputError):
        parse_host_list(bad, where="--hosts")


def test_hosts_flag_wins_over_cluster_and_default(tmp_path: Path) -> None:
    save_cluster(Cluster(name="lab", hosts=("h1", "h2"), ssh=SshSettings(user="ops")))
    set_default_cluster(load_user_config(), "lab")
    cfg = load_user_config()
    assert [h.address for h in resolve_hosts(cfg, hosts="x1,x2").hosts] == ["x1", "x2"]
    chosen = resolve_hosts(cfg)
    assert chosen.source == "cluster lab"
    assert [h.address for h in chosen.hosts] == ["h1", "h2"]
    assert chosen.hosts[0].ssh.user == "ops"
    hosts_file = tmp_path / "hosts"
    hosts_file.write_text("# lab\nf1\nf2  # second\n")
    assert [h.address for h in resolve_hosts(cfg, hosts_file=str(hosts_file)).hosts] == ["f1", "f2"]


def test_no_hosts_anywhere_is_an_input_error_with_a_hint() -> None:
    with pytest.raises(InputError) as err:
        resolve_hosts(load_user_config())
    assert err.value.hint and "-H" in err.value.hint


def test_unknown_cluster_names_the_known_ones() -> None:
    save_cluster(Cluster(name="lab", hosts=("h1",)))
    with pytest.raises(ConfigError) as err:
        load_cluster("nope")
    assert "lab" in (err.value.hint or "")


def test_cluster_files_round_trip() -> None:
    cluster = Cluster(
        name="lab",
        hosts=("10.0.0.1", "10.0.0.2"),
        description="two sparks",
        ssh=SshSettings(user="root", port=2222, identity_file="~/.ssh/k", options=(("A", "b"),), connect_timeout=3),
        hf_cache="/data/hf",
        container=ContainerSettings(ulimits={}, shm_size="1g", env={"X": "1"}),
    )
    assert cluster_from_mapping("lab", cluster_to_mapping(cluster), "test") == cluster


def test_the_testbed_cluster_format_reads_as_documented() -> None:
    data = {
        "name": "testbed",
        "hosts": ["10.213.0.11", "10.213.0.12"],
        "ssh": {"user": "root", "port": 22, "identity_file": "/k", "options": {"StrictHostKeyChecking": "yes"}},
        "container": {"ulimits": {}, "shm_size": "1g"},
    }
    c = cluster_from_mapping("testbed", data, "t")
    assert c.container.ulimits == {} and c.container.gpus == "all"
    assert c.ssh.options == (("StrictHostKeyChecking", "yes"),)


def test_cluster_changes_touch_only_what_is_given() -> None:
    base = Cluster(name="lab", hosts=("h",), ssh=SshSettings(user="a"))
    changed = apply_changes(base, user=None, gpus="none", ulimits=("nofile=1024",), env=("K=V",))
    assert changed.ssh.user == "a"
    assert changed.container.gpus is None
    assert changed.container.ulimits == {"nofile": "1024"}
    assert changed.container.env == {"K": "V"}


def test_local_addresses_are_recognised_without_dns() -> None:
    assert is_local_address("localhost")
    assert is_local_address("127.0.0.1")
    assert not is_local_address("192.0.2.44")  # TEST-NET-1: never assigned to this machine
    assert not is_local_address("spark-1.example")
