#!/usr/bin/env bash
# setup_check.sh: everything `sparkrun setup check` needs to know about one host, in one round trip. Read-only: it
# changes nothing on the host (the GPU test is a `docker run --rm` of an image the host already has; peers are tried
# with StrictHostKeyChecking=yes and UpdateHostKeys=no, so no known_hosts is written).
# Inputs (preamble):
#   SELF        this host's address as the cluster names it (its own sshd is scanned through a local address)
#   SSH_PORT    the SSH port (for scanning its own sshd and for trying the peers)
#   PEERS       (array) the other hosts' addresses, tried with PEER_SSH (BatchMode) to test the SSH mesh
#   PEER_SSH    (array) the ssh argv prefix a host uses to reach a peer
#   HF_CACHE    the Hugging Face cache (a leading ~/ is this user's home)
#   GPU_IMAGE   image for the GPU-in-a-container test ("" = the newest image the host has)
#   GPU_TIMEOUT seconds for that test
#   SYSFS_ROOT  where sysfs is mounted (/sys; tests point it at a fake tree)
#   CX7_FILE    the netplan file `sparkrun setup cx7` writes
# Events: clock, user, hostname, addr, groups, sudo, tool, ntp, docker, docker_member, gpu_host, gpu_container,
#   cache, cache_foreign, disk, ib, cx7_file, earlyoom, hostkey, userkey, mesh (parsed by sparkrun/setup/facts.py)
# shellcheck disable=SC2154  # inputs come from the preamble

# First, so the control machine can bracket it between sending the script and getting the answer.
sr_emit clock "$(date +%s.%N)"

me=$(id -un)
sr_emit user "$me $(id -u) $(id -g) $HOME"
sr_emit hostname "$(hostname 2>/dev/null || uname -n)"
sr_emit groups "$(id -nG)"
while read -r _n dev _fam cidr _rest; do
  sr_emit addr "$cidr $dev"
done < <(ip -4 -o addr show scope global 2>/dev/null)

for tool in bash curl tar ssh ssh-keygen ssh-keyscan sudo apt-get systemctl netplan nmcli docker; do
  if sr_have "$tool"; then sr_emit tool "$tool yes"; else sr_emit tool "$tool no"; fi
done

# sudo: root, nopasswd, password (sudo asked for one; whether the user may use sudo at all shows only then), missing
if [ "$(id -u)" = 0 ]; then
  sr_emit sudo root
elif ! sr_have sudo; then
  sr_emit sudo missing
elif err=$(sudo -n true 2>&1 </dev/null); then
  sr_emit sudo nopasswd
else
  sr_emit sudo "password ${err##*$'\n'}"
fi

if sr_have timedatectl; then
  sr_emit ntp "$(timedatectl show -p NTPSynchronized --value 2>/dev/null || echo unknown)"
else
  sr_emit ntp unknown
fi

# ---- docker and the GPU ----------------------------------------------------------------------------------------
# In group docker for a new login (`id -nG USER` reads the group database; plain `id -nG` is this login's groups,
# which a shared SSH connection keeps from before a change).
if id -nG "$me" 2>/dev/null | tr ' ' '\n' | grep -qx docker; then
  sr_emit docker_member yes
else
  sr_emit docker_member no
fi

sr_emit gpu_host "$(sr_gpu_summary)"

# gpu_try HOW ARGS...: run nvidia-smi -L in a throwaway container; "ok HOW first-gpu-line" or "fail HOW error".
gpu_try() {
  local how=$1 out
  shift
  if out=$(timeout "$GPU_TIMEOUT" docker run --rm --network none "$@" --entrypoint nvidia-smi "$image" -L 2>&1); then
    if grep -q '^GPU ' <<<"$out"; then
      sr_emit gpu_container "ok $how $(grep -m1 '^GPU ' <<<"$out")"
      return 0
    fi
    sr_emit gpu_container "fail $how nvidia-smi in the container lists no GPU"
    return 1
  fi
  sr_emit gpu_container "fail $how $(sr_docker_error "$out")"
  return 1
}

docker_state=missing
if sr_have docker; then
  if out=$(docker version --format '{{.Server.Version}}' 2>&1); then
    docker_state=ok
    sr_emit docker "ok $out"
  elif grep -qi 'permission denied' <<<"$out"; then
    docker_state=denied
    sr_emit docker "denied $(sr_docker_error "$out")"
  else
    docker_state=down
    sr_emit docker "down $(sr_docker_error "$out")"
  fi
else
  sr_emit docker "missing docker is not installed"
fi

if [ "$docker_state" = ok ]; then
  image=$GPU_IMAGE
  if [ -z "$image" ]; then
    image=$(docker image ls --format '{{.Repository}}:{{.Tag}}' 2>/dev/null | grep -vF '<none>' | head -n1)
  fi
  if [ -z "$image" ]; then
    sr_emit gpu_container "skip the host has no image to test with (pass --gpu-image IMAGE)"
  elif ! docker image inspect "$image" >/dev/null 2>&1; then
    sr_emit gpu_container "skip image $image is not on the host (pull it, or pass another --gpu-image)"
  elif ! gpu_try "--gpus" --gpus all; then
    if compgen -G '/etc/cdi/nvidia*' >/dev/null || compgen -G '/var/run/cdi/nvidia*' >/dev/null; then
      gpu_try "cdi" --device nvidia.com/gpu=all
    fi
  fi
else
  sr_emit gpu_container "skip docker is not usable by $me"
fi

# ---- the Hugging Face cache and its filesystem ---------------------------------------------------------------
cache=$HF_CACHE
[[ $cache == \~/* ]] && cache=$HOME/${cache:2}
[[ $cache == \~ ]] && cache=$HOME
if [ -d "$cache" ]; then
  foreign=$(find "$cache" ! -user "$(id -u)" -print -quit 2>/dev/null)
  [ -z "$foreign" ] || sr_emit cache_foreign "$foreign"
  if [ -w "$cache" ]; then writable="writable"; else writable="readonly"; fi
  sr_emit cache "exists $writable $cache"
else
  probe=$cache
  while [ ! -e "$probe" ] && [ "$probe" != / ]; do probe=$(dirname "$probe"); done
  if [ -w "$probe" ]; then writable="writable"; else writable="readonly"; fi
  sr_emit cache "missing $writable $cache"
fi
where=$cache
while [ ! -e "$where" ] && [ "$where" != / ]; do where=$(dirname "$where"); done
read -r _fs fstype size used avail _pct mount < <(df -PkT "$where" 2>/dev/null | awk 'NR == 2')
sr_emit disk "${size:-0} ${used:-0} ${avail:-0} ${fstype:-?} ${mount:-?}"

# ---- CX7 / RDMA ports: device, port, state, link layer, netdev, MTU, operstate, IPv4 addresses --------------------
shopt -s nullglob
for port_dir in "$SYSFS_ROOT"/class/infiniband/*/ports/*; do
  dev=${port_dir%/ports/*}
  dev=${dev##*/}
  state=$(cut -d' ' -f2- "$port_dir/state" 2>/dev/null || echo unknown)
  layer=$(cat "$port_dir/link_layer" 2>/dev/null || echo unknown)
  nets=("$SYSFS_ROOT/class/infiniband/$dev"/device/net/*)
  [ ${#nets[@]} -gt 0 ] || nets=(-)
  for net in "${nets[@]}"; do
    netdev=${net##*/}
    mtu=$(cat "$SYSFS_ROOT/class/net/$netdev/mtu" 2>/dev/null || echo 0)
    oper=$(cat "$SYSFS_ROOT/class/net/$netdev/operstate" 2>/dev/null || echo unknown)
    addrs=$(ip -4 -o addr show dev "$netdev" scope global 2>/dev/null | awk '{ print $4 }' | paste -sd, -)
    sr_emit ib "$dev ${port_dir##*/} ${state// /_} ${layer// /_} $netdev $mtu $oper ${addrs:--}"
  done
done
shopt -u nullglob
if [ -e "$CX7_FILE" ]; then sr_emit cx7_file yes; else sr_emit cx7_file no; fi

# ---- earlyoom ----------------------------------------------------------------------------------------------------
installed=missing
if sr_have earlyoom || dpkg-query -W -f='${Status}' earlyoom 2>/dev/null | grep -q 'install ok installed'; then
  installed=installed
fi
active=inactive
if sr_have systemctl && [ "$(systemctl is-active earlyoom 2>/dev/null)" = active ]; then
  active=active
elif pgrep -x earlyoom >/dev/null 2>&1; then
  active=active
fi
args=$(sed -n 's/^EARLYOOM_ARGS=//p' /etc/default/earlyoom 2>/dev/null | tail -n1)
args=${args#\"}
sr_emit earlyoom "$installed $active ${args%\"}"

# ---- SSH: this host's own keys (its sshd, scanned through a local address), the user's key, the mesh ---------------
is_local() { ip -4 -o addr show 2>/dev/null | awk '{ split($4, a, "/"); print a[1] }' | grep -qxF "$1"; }
self_ip=$SELF
[[ $self_ip =~ ^[0-9.]+$ ]] || self_ip=$(getent ahostsv4 "$SELF" 2>/dev/null | awk 'NR == 1 { print $1 }')
scan_from=()
[ -n "$self_ip" ] && is_local "$self_ip" && scan_from+=("$self_ip")
scan_from+=(127.0.0.1)
while read -r _n _dev _fam cidr _rest; do scan_from+=("${cidr%/*}"); done < <(ip -4 -o addr show scope global 2>/dev/null)
scanned=""
if sr_have ssh-keyscan; then
  for addr in "${scan_from[@]}"; do
    scanned=$(timeout 10 ssh-keyscan -T 3 -p "$SSH_PORT" "$addr" 2>/dev/null | grep -v '^#')
    [ -n "$scanned" ] && break
  done
fi
while read -r _name type key; do
  [ -n "${key:-}" ] && sr_emit hostkey "$type $key"
done <<<"$scanned"

for f in "$HOME"/.ssh/id_ed25519.pub "$HOME"/.ssh/id_ecdsa.pub "$HOME"/.ssh/id_rsa.pub; do
  if [ -f "$f" ] && [ -f "${f%.pub}" ]; then
    sr_emit userkey "$(head -n1 "$f")"
    break
  fi
done

if [ ${#PEERS[@]} -gt 0 ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  for i in "${!PEERS[@]}"; do
    (timeout 20 "${PEER_SSH[@]}" "${PEERS[$i]}" true </dev/null >/dev/null 2>"$tmp/$i.err"; echo $? >"$tmp/$i.rc") &
  done
  wait
  for i in "${!PEERS[@]}"; do
    rc=$(cat "$tmp/$i.rc" 2>/dev/null || echo 255)
    err=$(grep -v '^Warning' "$tmp/$i.err" 2>/dev/null | tail -n1)
    if [ "$rc" = 0 ]; then
      outcome=ok
    elif grep -q 'Host key verification failed\|host key is known\|HOST IDENTIFICATION HAS CHANGED' "$tmp/$i.err"; then
      outcome=hostkey
    elif grep -q 'Permission denied' "$tmp/$i.err"; then
      outcome=auth
    elif [ "$rc" = 124 ] || grep -qi 'timed out\|refused\|no route\|unreachable\|could not resolve' "$tmp/$i.err"; then
      outcome=unreachable
    else
      outcome=error
    fi
    sr_emit mesh "${PEERS[$i]} $outcome ${err:-exit $rc}"
  done
fi
exit 0
