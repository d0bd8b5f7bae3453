#!/usr/bin/env bash
# ib_detect.sh: the RDMA (InfiniBand / RoCE, e.g. the DGX Spark's CX7) ports this host can use and the interface
# that reaches the head, printed as KEY=VALUE lines for the engine containers' environment. Runs on each host (not
# in a container); read-only; parsed and validated by sparkrun.runtimes.network.parse_ib_detect_output.
#
# Inputs, all optional environment variables (the core sets them in the script's preamble):
#   HEAD_ADDRESS  the head's address (an IP); the interface routing to it is the management interface. On the head
#                 itself the route is `lo`, and the interface holding that address is used.
#   IB_TOPOLOGY   none | direct | switch | ring. ring adds NCCL_IB_MERGE_NICS=0, NCCL_IB_SUBNET_AWARE_ROUTING=1 and
#                 NCCL_NET_PLUGIN=none, and keeps the RDMA netdevs out of NCCL_SOCKET_IFNAME (issue #174).
#   SYSFS_ROOT    where sysfs is mounted (default /sys; the tests point it at a fake tree). `ip` comes from PATH.
#
# Sources: SYSFS_ROOT/class/infiniband/<dev>/ports/<port>/{state,link_layer,gid_attrs/types/<i>,gids/<i>},
# SYSFS_ROOT/class/infiniband/<dev>/device/net/<netdev>, `ip -4 -o addr show dev <netdev>`, `ip -o route get HEAD`.
#
# Output on stdout, one KEY=VALUE per line. With at least one ACTIVE port that has a usable GID:
#   NCCL_IB_DISABLE=0  NCCL_IB_HCA=<dev>,…  NCCL_IB_GID_INDEX=<RoCE v2 GID index, IPv4-mapped preferred>
#   UCX_NET_DEVICES=<dev>:<port>,…  NCCL_SOCKET_IFNAME=<mgmt>,<rdma netdevs>…
# Without: NCCL_IB_DISABLE=1 and NCCL_SOCKET_IFNAME=<mgmt>. In both cases, when the management interface is known:
#   GLOO_SOCKET_IFNAME, TP_SOCKET_IFNAME, OMPI_MCA_btl_tcp_if_include = <mgmt>
# and facts for the core (not container env): SPARKRUN_MGMT_IFNAME, SPARKRUN_MGMT_ADDRESS, SPARKRUN_IB_ADDRESSES
# (IPv4 addresses of the RDMA netdevs, for transfers over CX7). Notes go to stderr. Exit status 0: a host without
# RDMA is a normal answer, not an error.
set -eu
# No pipefail, even if a preamble set it: every probe below is best effort (a failing `ip` reads as "nothing found").
set +o pipefail
shopt -s nullglob

sysfs=${SYSFS_ROOT:-/sys}
head_address=${HEAD_ADDRESS:-}
topology=${IB_TOPOLOGY:-}

ib_note() { printf 'ib_detect: %s\n' "$*" >&2; }
ib_emit() { printf '%s=%s\n' "$1" "$2"; }
ib_join() {
  local IFS=,
  printf '%s' "$*"
}

# ib_has ITEM LIST...: true when ITEM is one of LIST.
ib_has() {
  local item=$1 other
  shift
  for other in "$@"; do
    [[ $other == "$item" ]] && return 0
  done
  return 1
}

# ib_ipv4_of NETDEV: its first IPv4 address, without the prefix length.
ib_ipv4_of() {
  ip -4 -o addr show dev "$1" 2>/dev/null | awk '{ split($4, a, "/"); print a[1]; exit }'
}

# ib_iface_holding ADDRESS: the (non-loopback) interface that has ADDRESS.
ib_iface_holding() {
  ip -4 -o addr show 2>/dev/null |
    awk -v want="$1" '$2 != "lo" { split($4, a, "/"); if (a[1] == want) { print $2; exit } }'
}

# ib_route_to ADDRESS: "DEV SRC" of the route to ADDRESS (either may be empty).
ib_route_to() {
  ip -o route get "$1" 2>/dev/null |
    awk '{ for (i = 1; i < NF; i++) { if ($i == "dev") d = $(i + 1); if ($i == "src") s = $(i + 1) } }
         END { print d " " s }'
}

# ib_first_global_iface EXCLUDED...: the first interface with a global IPv4 address that is not EXCLUDED.
ib_first_global_iface() {
  local name
  while read -r name; do
    if ! ib_has "$name" "$@"; then
      printf '%s\n' "$name"
      return 0
    fi
  done < <(ip -4 -o addr show scope global 2>/dev/null | awk '$2 != "lo" { print $2 }')
  return 0
}

# ib_roce_gid PORT_DIR: "INDEX v4" for the first IPv4-mapped RoCE v2 GID, else "INDEX v6" for the first other
# non-zero RoCE v2 GID, else nothing.
ib_roce_gid() {
  local dir=$1 i type gid any=""
  for ((i = 0; ; i++)); do
    [[ -e $dir/gid_attrs/types/$i ]] || break
    # Unused entries fail to read (EINVAL) on a real sysfs.
    { read -r type <"$dir/gid_attrs/types/$i"; } 2>/dev/null || continue
    [[ $type == "RoCE v2" ]] || continue
    { read -r gid <"$dir/gids/$i"; } 2>/dev/null || continue
    [[ $gid =~ ^[0:]+$ ]] && continue
    if [[ $gid == 0000:0000:0000:0000:0000:ffff:* ]]; then
      printf '%s v4\n' "$i"
      return 0
    fi
    [[ -n $any ]] || any=$i
  done
  [[ -n $any ]] && printf '%s v6\n' "$any"
  return 0
}

# --- the management interface: the one that routes to the head ---
mgmt_if=""
mgmt_addr=""
if [[ -n $head_address ]]; then
  read -r route_dev route_src < <(ib_route_to "$head_address") || true
  if [[ ${route_dev:-} == lo ]]; then
    mgmt_if=$(ib_iface_holding "$head_address")
    [[ -n $mgmt_if ]] && mgmt_addr=$head_address
  elif [[ -n ${route_dev:-} ]]; then
    mgmt_if=$route_dev
    mgmt_addr=${route_src:-$(ib_ipv4_of "$route_dev")}
  else
    ib_note "no route to the head $head_address"
  fi
fi

# --- RDMA ports: first every ACTIVE port with its GID, then one GID index for all ---
# NCCL_IB_GID_INDEX is one value for every HCA, so only ports that have a RoCE v2 GID at that index are used:
# IPv4-mapped GIDs when any port has one (the usual case, index 3 on a Spark), IPv6 ones otherwise.
ports=() # "dev port kind index": kind ib (native InfiniBand, no GID index), v4 or v6
for dev_dir in "$sysfs"/class/infiniband/*; do
  dev=${dev_dir##*/}
  for port_dir in "$dev_dir"/ports/*; do
    port=${port_dir##*/}
    state=""
    { read -r state <"$port_dir/state"; } 2>/dev/null || true
    [[ $state == *ACTIVE* ]] || continue
    link_layer=Ethernet
    { read -r link_layer <"$port_dir/link_layer"; } 2>/dev/null || true
    if [[ $link_layer == InfiniBand ]]; then
      ports+=("$dev $port ib -")
      continue
    fi
    read -r index kind < <(ib_roce_gid "$port_dir") || true
    if [[ -z ${index:-} ]]; then
      ib_note "$dev port $port is ACTIVE but has no RoCE v2 GID (no IP address on its interface?); not used"
      continue
    fi
    ports+=("$dev $port $kind $index")
    index=""
  done
done

want_kind=v6
for entry in "${ports[@]}"; do
  [[ $entry == *" v4 "* ]] && want_kind=v4
done

hcas=()
ucx_devices=()
rdma_ifs=()
rdma_addrs=()
gid_index=""
for entry in "${ports[@]}"; do
  read -r dev port kind index <<<"$entry"
  if [[ $kind != ib ]]; then
    if [[ $kind != "$want_kind" ]]; then
      ib_note "$dev port $port has no IPv4 RoCE v2 GID (no IPv4 address on its interface?); not used"
      continue
    fi
    if [[ -n $gid_index && $index != "$gid_index" ]]; then
      ib_note "$dev port $port has its RoCE v2 GID at index $index, the ports used at $gid_index; not used"
      continue
    fi
    gid_index=$index
  fi
  ib_has "$dev" "${hcas[@]}" || hcas+=("$dev")
  ucx_devices+=("$dev:$port")
  for net_dir in "$sysfs/class/infiniband/$dev"/device/net/*; do
    netdev=${net_dir##*/}
    ib_has "$netdev" "${rdma_ifs[@]}" && continue
    rdma_ifs+=("$netdev")
    address=$(ib_ipv4_of "$netdev")
    [[ -n $address ]] && rdma_addrs+=("$address")
  done
done

if [[ -z $mgmt_if ]]; then
  mgmt_if=$(ib_first_global_iface "${rdma_ifs[@]}")
  [[ -n $mgmt_if ]] && mgmt_addr=$(ib_ipv4_of "$mgmt_if")
fi
[[ -n $mgmt_if ]] || ib_note "could not tell the management interface; socket interfaces left to the engines"

# --- output ---
if ((${#hcas[@]} > 0)); then
  socket_ifs=()
  [[ -n $mgmt_if ]] && socket_ifs+=("$mgmt_if")
  if [[ $topology != ring ]]; then
    for netdev in "${rdma_ifs[@]}"; do
      ib_has "$netdev" "${socket_ifs[@]}" || socket_ifs+=("$netdev")
    done
  fi
  ib_emit NCCL_IB_DISABLE 0
  ib_emit NCCL_IB_HCA "$(ib_join "${hcas[@]}")"
  [[ -n $gid_index ]] && ib_emit NCCL_IB_GID_INDEX "$gid_index"
  ib_emit UCX_NET_DEVICES "$(ib_join "${ucx_devices[@]}")"
  ((${#socket_ifs[@]} > 0)) && ib_emit NCCL_SOCKET_IFNAME "$(ib_join "${socket_ifs[@]}")"
  if [[ $topology == ring ]]; then
    ib_emit NCCL_IB_MERGE_NICS 0
    ib_emit NCCL_IB_SUBNET_AWARE_ROUTING 1
    ib_emit NCCL_NET_PLUGIN none
  fi
else
  ib_emit NCCL_IB_DISABLE 1
  [[ -n $mgmt_if ]] && ib_emit NCCL_SOCKET_IFNAME "$mgmt_if"
fi
if [[ -n $mgmt_if ]]; then
  ib_emit GLOO_SOCKET_IFNAME "$mgmt_if"
  ib_emit TP_SOCKET_IFNAME "$mgmt_if"
  ib_emit OMPI_MCA_btl_tcp_if_include "$mgmt_if"
  ib_emit SPARKRUN_MGMT_IFNAME "$mgmt_if"
fi
[[ -n $mgmt_addr ]] && ib_emit SPARKRUN_MGMT_ADDRESS "$mgmt_addr"
((${#rdma_addrs[@]} > 0)) && ib_emit SPARKRUN_IB_ADDRESSES "$(ib_join "${rdma_addrs[@]}")"
exit 0
