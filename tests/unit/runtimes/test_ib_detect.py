"""ib_detect.sh run with bash against fake sysfs trees (SYSFS_ROOT) and a fake `ip` first on PATH, and the parser of
its output (sparkrun.runtimes.network)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sparkrun.runtimes.network import (
    ib_addresses,
    ib_container_env,
    ib_detect_script,
    merge_container_env,
    parse_ib_detect_output,
)

FAKE_IP = r"""#!/usr/bin/env bash
# fake ip: `-4 -o addr show [dev] [NAME] [scope global]` from $FAKE_IP_ADDRS ("NAME ADDR/LEN" lines) and
# `-o route get DEST` from $FAKE_IP_ROUTES ("DEST the rest of ip's answer" lines).
if [[ " $* " == *" route get "* ]]; then
  dest=${*: -1}
  while read -r first rest; do
    if [[ $first == "$dest" ]]; then
      printf '%s\n' "$rest"
      exit 0
    fi
  done <"$FAKE_IP_ROUTES"
  echo "RTNETLINK answers: Network is unreachable" >&2
  exit 2
fi
want="" global=0 after_show=0
for arg in "$@"; do
  case $arg in
    show) after_show=1 ;;
    dev|-4|-o|addr) ;;
    scope) global=1 ;;
    global) ;;
    *) if ((after_show)); then want=$arg; fi ;;
  esac
done
if [[ -n $want ]] && ! grep -q "^$want " "$FAKE_IP_ADDRS"; then
  echo "Device \"$want\" does not exist." >&2
  exit 1
fi
n=1
while read -r name addr; do
  [[ -n $want && $name != "$want" ]] && continue
  [[ $global == 1 && $name == lo ]] && continue
  printf '%s: %s    inet %s brd 0.0.0.0 scope global %s\\       valid_lft forever preferred_lft forever\n' \
    "$n" "$name" "$addr" "$name"
  n=$((n + 1))
done <"$FAKE_IP_ADDRS"
"""

LINK_LOCAL = "fe80:0000:0000:0000:4ebb:47ff:fe00:1111"


def _ipv4_gid(address: str) -> str:
    a, b, c, d = (int(part) for part in address.split("."))
    return f"0000:0000:0000:0000:0000:ffff:{a:02x}{b:02x}:{c:02x}{d:02x}"


@dataclass
class Hca:
    name: str
    netdev: str
    address: str | None  # IPv4 of the netdev; None: no IP (so no IPv4 RoCE GID)
    state: str = "4: ACTIVE"
    link_layer: str = "Ethernet"
    unused_gids: int = 4  # trailing GID entries that cannot be read (empty files here)
    gids: list[tuple[str, str]] = field(default_factory=list)

    def table(self) -> list[tuple[str, str]]:
        if self.gids:
            return self.gids
        table = [("IB/RoCE v1", LINK_LOCAL), ("RoCE v2", LINK_LOCAL)]
        if self.address:
            table += [("IB/RoCE v1", _ipv4_gid(self.address)), ("RoCE v2", _ipv4_gid(self.address))]
        return table


class Host:
    """A fake host: sysfs tree + `ip` answers."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "sys"
        self.bin = tmp_path / "bin"
        self.addrs = tmp_path / "addrs"
        self.routes = tmp_path / "routes"
        self.root.mkdir()
        self.bin.mkdir()
        (self.bin / "ip").write_text(FAKE_IP)
        (self.bin / "ip").chmod(0o755)
        self.addr_lines = ["lo 127.0.0.1/8", "enP7s7 10.0.0.11/24"]
        self.route_lines = ["10.0.0.12 10.0.0.12 dev enP7s7 src 10.0.0.11 uid 0", "10.0.0.11 local 10.0.0.11 dev lo"]

    def add(self, hca: Hca) -> None:
        port = self.root / "class" / "infiniband" / hca.name / "ports" / "1"
        (port / "gid_attrs" / "types").mkdir(parents=True)
        (port / "gids").mkdir()
        (port / "state").write_text(hca.state + "\n")
        (port / "link_layer").write_text(hca.link_layer + "\n")
        table = hca.table()
        for index, (kind, gid) in enumerate(table):
            (port / "gid_attrs" / "types" / str(index)).write_text(kind + "\n")
            (port / "gids" / str(index)).write_text(gid + "\n")
        for index in range(len(table), len(table) + hca.unused_gids):
            (port / "gid_attrs" / "types" / str(index)).write_text("")
            (port / "gids" / str(index)).write_text("0000:0000:0000:0000:0000:0000:0000:0000\n")
        (self.root / "class" / "infiniband" / hca.name / "device" / "net" / hca.netdev).mkdir(parents=True)
        if hca.address:
            self.addr_lines.append(f"{hca.netdev} {hca.address}/24")

    def run(self, **env: str) -> subprocess.CompletedProcess[str]:
        self.addrs.write_text("\n".join(self.addr_lines) + "\n")
        self.routes.write_text("\n".join(self.route_lines) + "\n")
        environ = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "SYSFS_ROOT": str(self.root),
            "FAKE_IP_ADDRS": str(self.addrs),
            "FAKE_IP_ROUTES": str(self.routes),
            **env,
        }
        # `-o pipefail`: the core's preamble may set it; the script must not die on a probe that finds nothing.
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c", ib_detect_script(), "ib_detect"],
            env=environ,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        parse_ib_detect_output(result.stdout)  # whatever it prints must pass the validator
        return result


def _spark(host: Host) -> None:
    """A DGX Spark: four RDMA functions, two cabled and addressed, one present but down, one without an IP."""
    host.add(Hca("rocep1s0f0", "enp1s0f0np0", None, state="1: DOWN"))
    host.add(Hca("rocep1s0f1", "enp1s0f1np1", "192.168.200.11"))
    host.add(Hca("roceP2p1s0f0", "enP2p1s0f0np0", None))
    host.add(Hca("roceP2p1s0f1", "enP2p1s0f1np1", "192.168.201.11"))


def test_spark_with_two_active_hcas(tmp_path: Path) -> None:
    host = Host(tmp_path)
    _spark(host)
    result = host.run(HEAD_ADDRESS="10.0.0.12")
    assert result.stdout.splitlines() == [
        "NCCL_IB_DISABLE=0",
        "NCCL_IB_HCA=roceP2p1s0f1,rocep1s0f1",
        "NCCL_IB_GID_INDEX=3",
        "UCX_NET_DEVICES=roceP2p1s0f1:1,rocep1s0f1:1",
        "NCCL_SOCKET_IFNAME=enP7s7,enP2p1s0f1np1,enp1s0f1np1",
        "GLOO_SOCKET_IFNAME=enP7s7",
        "TP_SOCKET_IFNAME=enP7s7",
        "OMPI_MCA_btl_tcp_if_include=enP7s7",
        "SPARKRUN_MGMT_IFNAME=enP7s7",
        "SPARKRUN_MGMT_ADDRESS=10.0.0.11",
        "SPARKRUN_IB_ADDRESSES=192.168.201.11,192.168.200.11",
    ]
    assert result.stderr == (
        "ib_detect: roceP2p1s0f0 port 1 has no IPv4 RoCE v2 GID (no IPv4 address on its interface?); not used\n"
    )


def test_without_infiniband(tmp_path: Path) -> None:
    result = Host(tmp_path).run(HEAD_ADDRESS="10.0.0.12")
    assert result.stdout.splitlines() == [
        "NCCL_IB_DISABLE=1",
        "NCCL_SOCKET_IFNAME=enP7s7",
        "GLOO_SOCKET_IFNAME=enP7s7",
        "TP_SOCKET_IFNAME=enP7s7",
        "OMPI_MCA_btl_tcp_if_include=enP7s7",
        "SPARKRUN_MGMT_IFNAME=enP7s7",
        "SPARKRUN_MGMT_ADDRESS=10.0.0.11",
    ]


def test_a_port_that_is_down_is_not_used(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.add(Hca("rocep1s0f1", "enp1s0f1np1", "192.168.200.11", state="1: DOWN"))
    lines = host.run(HEAD_ADDRESS="10.0.0.12").stdout.splitlines()
    assert lines[:2] == ["NCCL_IB_DISABLE=1", "NCCL_SOCKET_IFNAME=enP7s7"]
    assert not any(line.startswith(("NCCL_IB_HCA", "SPARKRUN_IB_ADDRESSES")) for line in lines)


def test_on_the_head_itself_the_route_is_lo_and_the_interface_holding_the_address_is_used(tmp_path: Path) -> None:
    host = Host(tmp_path)
    _spark(host)
    detected = parse_ib_detect_output(host.run(HEAD_ADDRESS="10.0.0.11").stdout)
    assert (detected["SPARKRUN_MGMT_IFNAME"], detected["SPARKRUN_MGMT_ADDRESS"]) == ("enP7s7", "10.0.0.11")


def test_head_reached_over_the_cx7_makes_that_the_socket_interface(tmp_path: Path) -> None:
    host = Host(tmp_path)
    _spark(host)
    host.route_lines.append("192.168.200.12 192.168.200.12 dev enp1s0f1np1 src 192.168.200.11 uid 0")
    detected = parse_ib_detect_output(host.run(HEAD_ADDRESS="192.168.200.12").stdout)
    assert detected["NCCL_SOCKET_IFNAME"] == "enp1s0f1np1,enP2p1s0f1np1"
    assert detected["GLOO_SOCKET_IFNAME"] == "enp1s0f1np1"
    assert detected["SPARKRUN_MGMT_ADDRESS"] == "192.168.200.11"


def test_without_head_address_the_first_global_non_rdma_interface_is_management(tmp_path: Path) -> None:
    host = Host(tmp_path)
    _spark(host)
    host.addr_lines.insert(1, "enp1s0f1np1 192.168.200.11/24")  # an RDMA netdev listed first must be skipped
    detected = parse_ib_detect_output(host.run().stdout)
    assert detected["SPARKRUN_MGMT_IFNAME"] == "enP7s7"


def test_unreachable_head_falls_back_and_says_so(tmp_path: Path) -> None:
    result = Host(tmp_path).run(HEAD_ADDRESS="10.9.9.9")
    assert "no route to the head 10.9.9.9" in result.stderr
    assert "SPARKRUN_MGMT_IFNAME=enP7s7" in result.stdout.splitlines()


def test_ring_topology_adds_the_ring_settings_and_keeps_rdma_netdevs_out_of_sockets(tmp_path: Path) -> None:
    host = Host(tmp_path)
    _spark(host)
    detected = parse_ib_detect_output(host.run(HEAD_ADDRESS="10.0.0.12", IB_TOPOLOGY="ring").stdout)
    assert detected["NCCL_SOCKET_IFNAME"] == "enP7s7"
    assert (detected["NCCL_IB_MERGE_NICS"], detected["NCCL_IB_SUBNET_AWARE_ROUTING"]) == ("0", "1")
    assert detected["NCCL_NET_PLUGIN"] == "none"


def test_ipv6_only_roce_v2_gid_is_used_when_there_is_no_ipv4_one(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.add(Hca("mlx5_0", "ens1f0", None, gids=[("IB/RoCE v1", LINK_LOCAL), ("RoCE v2", LINK_LOCAL)]))
    detected = parse_ib_detect_output(host.run(HEAD_ADDRESS="10.0.0.12").stdout)
    assert (detected["NCCL_IB_HCA"], detected["NCCL_IB_GID_INDEX"]) == ("mlx5_0", "1")


def test_a_port_whose_gid_is_at_another_index_is_left_out(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.add(Hca("rocep1s0f1", "enp1s0f1np1", "192.168.200.11"))
    odd = [("IB/RoCE v1", LINK_LOCAL), ("RoCE v2", LINK_LOCAL), ("RoCE v2", _ipv4_gid("192.168.201.11"))]
    host.add(Hca("roceP2p1s0f1", "enP2p1s0f1np1", "192.168.201.11", gids=odd))
    result = host.run(HEAD_ADDRESS="10.0.0.12")
    detected = parse_ib_detect_output(result.stdout)
    assert (detected["NCCL_IB_HCA"], detected["NCCL_IB_GID_INDEX"]) == ("roceP2p1s0f1", "2")
    assert "rocep1s0f1 port 1 has its RoCE v2 GID at index 3, the ports used at 2; not used" in result.stderr


def test_a_port_without_any_gid_is_left_out(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.add(Hca("rocep1s0f1", "enp1s0f1np1", None, gids=[("IB/RoCE v1", LINK_LOCAL)]))
    result = host.run(HEAD_ADDRESS="10.0.0.12")
    assert result.stdout.splitlines()[0] == "NCCL_IB_DISABLE=1"
    assert "rocep1s0f1 port 1 is ACTIVE but has no RoCE v2 GID" in result.stderr


def test_a_netdev_that_ip_does_not_know_is_used_without_an_address(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.add(Hca("mlx5_9", "ghost0", None, gids=[("RoCE v2", _ipv4_gid("192.168.9.9"))]))
    detected = parse_ib_detect_output(host.run(HEAD_ADDRESS="10.0.0.12").stdout)
    assert (detected["NCCL_IB_HCA"], detected["NCCL_IB_GID_INDEX"]) == ("mlx5_9", "0")
    assert detected["NCCL_SOCKET_IFNAME"] == "enP7s7,ghost0"
    assert "SPARKRUN_IB_ADDRESSES" not in detected


def test_native_infiniband_needs_no_gid_index(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.add(Hca("mlx5_0", "ib0", "172.16.0.11", link_layer="InfiniBand", gids=[("IB/RoCE v1", LINK_LOCAL)]))
    detected = parse_ib_detect_output(host.run(HEAD_ADDRESS="10.0.0.12").stdout)
    assert detected["NCCL_IB_HCA"] == "mlx5_0"
    assert "NCCL_IB_GID_INDEX" not in detected
    assert ib_addresses(detected) == ("172.16.0.11",)


# --- the parser ---------------------------------------------------------------------------------------------------


def test_parse_accepts_the_known_keys_and_blank_lines() -> None:
    text = "NCCL_IB_DISABLE=0\n\nNCCL_IB_HCA=mlx5_0:1,rocep1s0f1\nSPARKRUN_IB_ADDRESSES=192.168.200.11\n"
    assert parse_ib_detect_output(text) == {
        "NCCL_IB_DISABLE": "0",
        "NCCL_IB_HCA": "mlx5_0:1,rocep1s0f1",
        "SPARKRUN_IB_ADDRESSES": "192.168.200.11",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("NCCL_IB_DISABLE", "not KEY=VALUE"),
        ("export NCCL_IB_DISABLE=1", "not KEY=VALUE"),
        ("LD_PRELOAD=/tmp/x.so", "unknown key 'LD_PRELOAD'"),
        ("NCCL_IB_DISABLE=1\nNCCL_IB_DISABLE=0", "given twice"),
        ("NCCL_IB_DISABLE=2", "bad value for NCCL_IB_DISABLE"),
        ("NCCL_IB_HCA=mlx5_0; rm -rf /", "bad value for NCCL_IB_HCA"),
        ("NCCL_IB_GID_INDEX=three", "bad value"),
        ("NCCL_SOCKET_IFNAME=", "bad value"),
        ("GLOO_SOCKET_IFNAME=eth0 eth1", "bad value"),
        ("SPARKRUN_MGMT_ADDRESS=999.1.1.1", "bad value"),
        ("SPARKRUN_IB_ADDRESSES=192.168.0.1,fe80::1", "bad value"),
    ],
)
def test_parse_rejects_malformed_output(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_ib_detect_output(text)


def test_container_env_leaves_the_facts_out_and_the_rank_env_wins() -> None:
    detected = {"NCCL_IB_DISABLE": "0", "NCCL_SOCKET_IFNAME": "enP7s7", "SPARKRUN_MGMT_IFNAME": "enP7s7"}
    assert ib_container_env(detected) == {"NCCL_IB_DISABLE": "0", "NCCL_SOCKET_IFNAME": "enP7s7"}
    rank = {"NCCL_SOCKET_IFNAME": "bond0", "NODE_IP": "10.0.0.11"}
    assert merge_container_env(detected, rank) == {
        "NCCL_IB_DISABLE": "0",
        "NCCL_SOCKET_IFNAME": "bond0",
        "NODE_IP": "10.0.0.11",
    }
