# shellcheck shell=bash
# testbed lib: the switch, host links, the fake InfiniBand device, link/shape plumbing. Sourced by scripts/testbed.sh.
# shellcheck disable=SC2154  # settings come from scripts/testbed.sh

# ---------------------------------------------------------------- network
ensure_switch() {
  [ -e "/run/netns/$TB_SW" ] || ip netns add "$TB_SW"
  ip -n "$TB_SW" link set lo up
  ip -n "$TB_SW" link show br0 >/dev/null 2>&1 || ip -n "$TB_SW" link add br0 type bridge
  ip -n "$TB_SW" link set br0 up
  # br1: the CX7 fabric (hosts' CX7 netdevs), so addresses a `setup cx7` assigns really reach the other hosts
  ip -n "$TB_SW" link show br1 >/dev/null 2>&1 || ip -n "$TB_SW" link add br1 type bridge
  ip -n "$TB_SW" link set br1 up
  if ! ip link show "$TB_ROOTIF" >/dev/null 2>&1; then
    ip -n "$TB_SW" link del "${TB_ROOTIF}p" 2>/dev/null || true
    ip link add "$TB_ROOTIF" type veth peer name "${TB_ROOTIF}p"
    ip link set "${TB_ROOTIF}p" netns "$TB_SW"
  fi
  ip -n "$TB_SW" link set "${TB_ROOTIF}p" master br0 up
  ip addr replace "$TB_NET.1/24" dev "$TB_ROOTIF"
  ip link set "$TB_ROOTIF" up
}

create_host_net() {
  local i=$1 ns v
  ns=$(ns_of "$i")
  v=tbv$i
  [ -e "/run/netns/$ns" ] || ip netns add "$ns"
  if ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then
    ip -n "$TB_SW" link del "$v" 2>/dev/null || true
    ip link add "$v" type veth peer name "${v}p"
    ip link set "$v" netns "$TB_SW"
    ip link set "${v}p" netns "$ns"
    ip -n "$ns" link set "${v}p" name eth0
    # a fixed MAC per host: a restarted host keeps it, so peers' ARP caches stay right
    ip -n "$ns" link set eth0 address "$(printf '02:54:42:00:00:%02x' "$i")"
  fi
  ip -n "$TB_SW" link set "$v" master br0 up
  # forwarding on, as dockerd leaves it on a real host (docker run warns otherwise); nothing routes anywhere
  nsenter --net="/run/netns/$ns" sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward'
  ip -n "$ns" addr replace "$(ip_of "$i")/24" dev eth0
  ip -n "$ns" link set lo up
  ip -n "$ns" link set eth0 up
}

# ---------------------------------------------------------------- fake InfiniBand
# I [MODE]: the fake /sys/class/infiniband tree under $H/ib (its contents are replaced, the dir stays: it may be
# bind-mounted in the host). MODE unconfigured: no IPv4 address yet, so only the link-local GIDs 0 and 1.
write_ib_tree() {
  local i=$1 mode=${2:-configured} H d p ip4 hex mac g
  H=$(hdir "$i")
  ip4=$(ib_ip_of "$i")
  mkdir -p "$H/ib"
  rm -rf "${H:?}/ib/$IB_DEV"
  d=$H/ib/$IB_DEV
  p=$d/ports/1
  mkdir -p "$p/gids" "$p/gid_attrs/types" "$p/gid_attrs/ndevs" "$d/device/net"
  ln -s "/sys/class/net/$IB_IF" "$d/device/net/$IB_IF"
  printf '1: CA\n' >"$d/node_type"
  printf '28.45.1200\n' >"$d/fw_ver"
  printf 'MT4129\n' >"$d/hca_type"
  printf 'MT_0000000000\n' >"$d/board_id"
  mac=$(printf '02:1b:21:%02x:%02x:%02x' 0 0 "$i")
  printf '021b:21ff:fe00:%04x\n' "$i" >"$d/node_guid"
  printf '4: ACTIVE\n' >"$p/state"
  printf '5: LinkUp\n' >"$p/phys_state"
  printf 'Ethernet\n' >"$p/link_layer"
  printf '200 Gb/sec (4X HDR)\n' >"$p/rate"
  printf '0x0\n' >"$p/lid"
  local o1 o2 o3 o4
  IFS=. read -r o1 o2 o3 o4 <<<"$ip4"
  hex=$(printf '%02x%02x:%02x%02x' "$o1" "$o2" "$o3" "$o4")
  g="fe80:0000:0000:0000:001b:21ff:fe00:$(printf '%04x' "$i")"
  printf '%s\n' "$g" >"$p/gids/0"
  printf '%s\n' "$g" >"$p/gids/1"
  printf 'IB/RoCE v1\n' >"$p/gid_attrs/types/0"
  printf 'RoCE v2\n' >"$p/gid_attrs/types/1"
  local n=1
  if [ "$mode" = configured ]; then
    printf '0000:0000:0000:0000:0000:ffff:%s\n' "$hex" >"$p/gids/2"
    printf '0000:0000:0000:0000:0000:ffff:%s\n' "$hex" >"$p/gids/3"
    printf 'IB/RoCE v1\n' >"$p/gid_attrs/types/2"
    printf 'RoCE v2\n' >"$p/gid_attrs/types/3"
    n=3
  fi
  for ((g = 0; g <= n; g++)); do printf '%s\n' "$IB_IF" >"$p/gid_attrs/ndevs/$g"; done
  echo "$mac" >"$H/ib.mac"
}

# I configured|unconfigured|absent: the CX7-named netdev (a veth: this kernel may lack "dummy"; its peer tbi<i> is
# a port of bridge br1, the CX7 fabric, in the switch namespace). configured: the IB address /32 and MTU 9000;
# unconfigured: no IPv4 address and MTU 1500, as on a Spark nobody has set up (`setup cx7` fixes it for real).
ib_netdev() {
  local i=$1 ns
  ns=$(ns_of "$i")
  if [ "$2" != absent ]; then
    if ! ip -n "$ns" link show "$IB_IF" >/dev/null 2>&1; then
      ip -n "$TB_SW" link del "tbi$i" 2>/dev/null || true
      ip link add "tbi$i" type veth peer name "tbj$i"
      ip link set "tbi$i" netns "$TB_SW"
      ip link set "tbj$i" netns "$ns"
      ip -n "$ns" link set "tbj$i" name "$IB_IF"
      ip -n "$ns" link set "$IB_IF" address "$(cat "$(hdir "$i")/ib.mac")"
    fi
    ip -n "$TB_SW" link set "tbi$i" mtu 9000 master br1 up
    ip -n "$ns" -4 addr flush dev "$IB_IF"
    if [ "$2" = configured ]; then
      ip -n "$ns" link set "$IB_IF" mtu 9000
      ip -n "$ns" addr replace "$(ib_ip_of "$i")/32" dev "$IB_IF"
    else
      ip -n "$ns" link set "$IB_IF" mtu 1500
    fi
    ip -n "$ns" link set "$IB_IF" up
  else
    ip -n "$ns" link del "$IB_IF" 2>/dev/null || true
    ip -n "$TB_SW" link del "tbi$i" 2>/dev/null || true
  fi
}

# ---------------------------------------------------------------- links (link, shape)
link_devs() { # HOST -> "NETNS DEV" lines: both ends of the host's (or the control machine's) link
  if [ "$1" = control ]; then
    echo "- $TB_ROOTIF"
    echo "$TB_SW ${TB_ROOTIF}p"
  else
    local i
    i=$(host_idx "$1")
    echo "$TB_SW tbv$i"
    echo "$(ns_of "$i") eth0"
  fi
}
ipn() { # NETNS ARGS...: ip in NETNS ("-" = root namespace)
  local ns=$1
  shift
  if [ "$ns" = - ]; then ip "$@"; else ip -n "$ns" "$@"; fi
}
tcn() {
  local ns=$1
  shift
  if [ "$ns" = - ]; then tc "$@"; else tc -n "$ns" "$@"; fi
}
