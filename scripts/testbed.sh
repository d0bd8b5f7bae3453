#!/usr/bin/env bash
# testbed.sh - a local cluster of N simulated DGX Spark hosts for sparkrun's end-to-end tests.
#
# Usage: scripts/testbed.sh SUBCOMMAND [ARGS]
#   up N                 start hosts 1..N (idempotent; restarts crashed hosts; keeps hosts above N)
#   down [--purge]       stop every host, remove all traces; non-zero + a list if anything is left
#   status               one line per host (exit 0 only when every known host is healthy)
#   running              the IPs of the hosts that are up and healthy, one per line
#   hosts                the IPs of the hosts of the last `up`, one per line
#   exec HOST [CMD...]   run CMD inside HOST's namespaces (no ssh); one argument = a shell string
#   ssh HOST [CMD...]    plain OpenSSH to HOST with the testbed's ssh_config
#   delay HOST MS|off    add MS ms of latency to everything HOST sends (iptables NFQUEUE + nfq_delay.py)
#   shape HOST RATE|off  token-bucket bandwidth limit (e.g. 200mbit) on HOST's link, both directions;
#                        HOST `control` shapes the control machine's link tb0
#   link HOST up|down    plug/unplug HOST's cable (its switch port); HOST may be `control`
#   ib HOST on|off       fake InfiniBand/RoCE device for HOST (see "Fake InfiniBand" below)
#   image [HOST...]      (re)build the stand-in engine image and load it where it is stale
#   cluster-file [DIR]   write DIR/clusters/testbed.yaml (DIR defaults to the active sparkrun config dir)
#   leftovers            list anything a testbed left on this machine; exit 1 if there is something
#   mem                  PSS (KiB) of all testbed processes, containers included
# HOST may be 3, h3, tb-h3 or 10.213.0.13.
#
# Environment:
#   TB_STATE=/var/lib/sparkrun-testbed   state dir (keys, per-host dirs, logs, lock file, the engine rootfs and
#                                        each host's docker data root, kept across down/up so `up` need not
#                                        import the image again; `down --purge` removes them too).
#                                        Must not be under /tmp, /root or /run (each host mounts its own).
#   TB_FAKE_GPUS=1     at `up`: fake GPUs per host started by this `up` (nvidia-smi stub answering like a GB10
#                      + the nvidia-container-runtime-hook stub so `docker run --gpus ...` works); 0 = none.
#   TB_FAKE_IB=0       at `up`: 1 gives hosts started by this `up` the fake InfiniBand device.
#   TB_RETRIES=3       attempts per host at `up` (dockerd/containerd can time out under CPU load).
#   TB_READY_TIMEOUT=60  seconds a host may take to become ready; scaled up with the load average.
#   TB_PARALLEL=0      hosts started at once by `up` (0 = all).
#   TB_LOCK_TIMEOUT=900  seconds to wait for another testbed.sh holding the lock.
#   TB_FAST_KEX=1      sshd offers curve25519 key exchange only (~90 ms faster per ssh connection).
#
# Layout (all addresses inside 10.213.0.0/24, no default route anywhere):
#   control machine  10.213.0.1 on veth tb0 (root namespace) <-> bridge br0 in netns tb-sw
#   host i           netns tb-h<i>, eth0 = 10.213.0.(10+i)/24 (veth tbv<i> on br0), i = 1..64
#   fake IB netdev   enp1s0f0np0 = 10.213.0.(100+i)/32 (a veth whose peer is unplugged) when `ib` is on
#   10.213.0.201     never assigned: use it as the "unreachable host" address while the testbed is up
# Each host also has its own mount, UTS and PID namespace (its own ps/kill view), a private /root, /tmp, /run,
# /dev/shm, /etc/hosts and /etc/hostname, a fresh sysfs, its own sshd on <ip>:22 (key-only root login) and its
# own dockerd (containers under the cgroup /tb-h<i>). Host processes are in the pids cgroup tb-h<i>/init, so
# `down` can find and kill all of them. `docker run --network host` binds on the host's IP.
#
# Fake InfiniBand (`ib HOST on` or TB_FAKE_IB=1), for the InfiniBand/RoCE detection code. Inside the host
# (ssh sessions, `exec`), exactly as on a DGX Spark with one ConnectX-7 port cabled:
#   /sys/class/infiniband/rocep1s0f0/ports/1/state              "4: ACTIVE"
#   /sys/class/infiniband/rocep1s0f0/ports/1/phys_state         "5: LinkUp"
#   /sys/class/infiniband/rocep1s0f0/ports/1/link_layer         "Ethernet"
#   /sys/class/infiniband/rocep1s0f0/ports/1/rate               "200 Gb/sec (4X HDR)"
#   /sys/class/infiniband/rocep1s0f0/ports/1/gids/{0..3}        0,1 = fe80::/64 link-local, 2,3 = ::ffff:<ib ip>
#   /sys/class/infiniband/rocep1s0f0/ports/1/gid_attrs/types/{0..3}  "IB/RoCE v1", "RoCE v2", "IB/RoCE v1", "RoCE v2"
#   /sys/class/infiniband/rocep1s0f0/ports/1/gid_attrs/ndevs/{0..3}  "enp1s0f0np0"
#   /sys/class/infiniband/rocep1s0f0/device/net/enp1s0f0np0     -> /sys/class/net/enp1s0f0np0
#   /sys/class/infiniband/rocep1s0f0/{node_type,fw_ver,hca_type,node_guid}
#   `ip -4 addr show enp1s0f0np0`                               inet 10.213.0.(100+i)/32
# The tree is a directory of plain files ($TB_STATE/h<i>/ib) bind-mounted on /sys/class/infiniband, which is
# possible because /sys/class in each host is a tmpfs holding bind mounts of the real class directories.
# Hosts reply to ARP for their IB address on eth0, so 10.213.0.(100+i) is reachable from the other hosts.
# Containers see it only with -v /sys/class/infiniband:/sys/class/infiniband (real containers get a fresh sysfs);
# /dev/infiniband is not faked (the host's /dev is shared with the control machine).
set -euo pipefail

TB_STATE=${TB_STATE:-/var/lib/sparkrun-testbed}
TB_STATE=${TB_STATE%/}
TB_NET=10.213.0                    # root ns = .1, host i = .(TB_BASE+i), IB dummy = .(100+i)
TB_BASE=10
TB_MAX_HOSTS=64
TB_SW=tb-sw                        # netns holding bridge br0
TB_ROOTIF=tb0                      # root-ns end of the uplink veth (peer tb0p sits on br0)
TB_IMAGE=sparkrun-test/engine:latest
TB_HASH_LABEL=sparkrun.testbed.engine-hash
IB_DEV=rocep1s0f0
IB_IF=enp1s0f0np0
SYS_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
TB_SELF=$(readlink -f "${BASH_SOURCE[0]}")
TB_SRC=$(dirname "$TB_SELF")/testbed     # helper files and the stand-in engine sources
CLUSTER_DESC='local test cluster (scripts/testbed.sh)'

log() { echo "[testbed] $*" >&2; }
die() { echo "[testbed] ERROR: $*" >&2; exit 1; }

ip_of() { echo "$TB_NET.$((TB_BASE + $1))"; }
ib_ip_of() { echo "$TB_NET.$((100 + $1))"; }
hdir() { echo "$TB_STATE/h$1"; }
ddir() { echo "$TB_STATE/docker/h$1"; } # a host's docker data root: kept across down/up (image cache)
ns_of() { echo "tb-h$1"; }
hdocker() { local i=$1; shift; env -u DOCKER_CONTEXT -u DOCKER_CONFIG DOCKER_HOST="unix://$(hdir "$i")/run/docker.sock" docker "$@"; }

# ---------------------------------------------------------------- cgroups (v1 or v2)
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then CG_PIDS=/sys/fs/cgroup; else CG_PIDS=/sys/fs/cgroup/pids; fi
cg_dirs() { # every cgroup dir of host i, all hierarchies
  local d
  for d in /sys/fs/cgroup/tb-h"$1" /sys/fs/cgroup/*/tb-h"$1"; do [ -d "$d" ] && echo "$d"; done
  return 0
}
cg_init_procs() { cat "$CG_PIDS/tb-h$1/init/cgroup.procs" 2>/dev/null || true; }

host_idx() { # 3 | h3 | tb-h3 | 10.213.0.13  ->  3
  local h=$1 i
  case $h in
    "$TB_NET".*) i=$((${h##*.} - TB_BASE)) ;;
    tb-h*) i=${h#tb-h} ;;
    h*) i=${h#h} ;;
    *) i=$h ;;
  esac
  if ! [[ $i =~ ^[0-9]+$ ]] || ! ((10#$i >= 1 && 10#$i <= TB_MAX_HOSTS)); then
    die "bad host '$h' (1..$TB_MAX_HOSTS, h3, tb-h3 or $TB_NET.13)"
  fi
  echo "$((10#$i))"
}

# pid_ok PIDFILE MARKER: the pid in the file is alive and its command line contains MARKER
# (guards against signalling a recycled pid).
pid_ok() {
  local f=$1 m=$2 p c
  [ -s "$f" ] || return 1
  p=$(cat "$f" 2>/dev/null) || return 1
  [[ $p =~ ^[0-9]+$ ]] || return 1
  c=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || return 1
  [[ $c == *"$m"* ]]
}
pid_of() { cat "$1" 2>/dev/null || true; }

# host_proc I MARKER: root-namespace pid of the host's process whose command line contains MARKER
host_proc() {
  local p c
  for p in $(cg_init_procs "$1"); do
    c=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || continue
    if [[ $c == *"$2"* ]]; then echo "$p"; return 0; fi
  done
  return 1
}
host_pid1() { # root-namespace pid of the host's PID 1 (child of the unshare process in init.pid)
  local u; u=$(pid_of "$(hdir "$1")/init.pid")
  [ -n "$u" ] || return 1
  local c; c=$(cat "/proc/$u/task/$u/children" 2>/dev/null) || return 1
  c=${c%% *}
  [ -n "$c" ] && echo "$c"
}
init_alive() { pid_ok "$(hdir "$1")/init.pid" "__hostinit $1"; }
sshd_pid() { host_proc "$1" "$(hdir "$1")/sshd_config"; }
dockerd_pid() { host_proc "$1" "--data-root $(ddir "$1")"; }
docker_ok() { hdocker "$1" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

host_healthy() {
  [ -e "/run/netns/$(ns_of "$1")" ] && ip -n "$(ns_of "$1")" link show eth0 >/dev/null 2>&1 &&
    init_alive "$1" && sshd_pid "$1" >/dev/null && docker_ok "$1"
}

# all pids that belong to host i: its cgroups (host daemons, ssh sessions, containers) and its netns
host_pids() {
  local i=$1 d
  {
    for d in $(cg_dirs "$i"); do find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null || true; done
    if [ -e "/run/netns/$(ns_of "$i")" ]; then ip netns pids "$(ns_of "$i")" 2>/dev/null || true; fi
  } | sort -un
}

alive() { # PID: running (a zombie waiting for its parent to reap it counts as gone)
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [ "${st%% *}" != Z ]
}

kill_pidfile() { # PIDFILE MARKER [TIMEOUT_S] [SIGNAL]
  local f=$1 m=$2 t=${3:-10} sig=${4:-TERM} p n
  pid_ok "$f" "$m" || { rm -f "$f"; return 0; }
  p=$(cat "$f")
  kill -"$sig" "$p" 2>/dev/null || true
  for ((n = 0; n < t * 50; n++)); do
    alive "$p" || break
    sleep 0.02
  done
  if alive "$p"; then kill -KILL "$p" 2>/dev/null || true; fi
  rm -f "$f"
}

# ---------------------------------------------------------------- locking
# Mutating subcommands serialize on $TB_STATE/lock (fd 9). Long-lived processes are started with 9>&- so they
# never inherit the lock.
take_lock() {
  mkdir -p "$TB_STATE"
  exec 9>>"$TB_STATE/lock"
  if ! flock -n 9; then
    log "waiting for another testbed.sh (lock $TB_STATE/lock)..."
    flock -w "${TB_LOCK_TIMEOUT:-900}" 9 || die "timed out waiting for $TB_STATE/lock"
  fi
}

need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

check_state_dir() {
  case "$TB_STATE/" in
    /tmp/* | /root/* | /run/* | /var/run/* | /sys/* | /proc/* | /dev/*)
      die "TB_STATE=$TB_STATE: each host mounts its own /tmp, /root, /run, /sys and /proc, so state there is hidden from the hosts; use e.g. /var/lib/sparkrun-testbed" ;;
    /*) ;;
    *) die "TB_STATE must be an absolute path" ;;
  esac
}

# ---------------------------------------------------------------- one-time assets
ensure_keys() {
  mkdir -p "$TB_STATE/keys" "$TB_STATE/cm" "$TB_STATE/cache" "$TB_STATE/bin"
  chmod 700 "$TB_STATE/keys" "$TB_STATE/cm"
  [ -f "$TB_STATE/keys/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C sparkrun-testbed -f "$TB_STATE/keys/id_ed25519"
}
ensure_hostkey() { # host keys persist across down/up so known_hosts stays valid
  local f="$TB_STATE/keys/host$1_ed25519"
  [ -f "$f" ] || ssh-keygen -q -t ed25519 -N '' -C "tb-h$1" -f "$f"
}

# Helpers the hosts run are copied into $TB_STATE/bin: the checkout may live under /root or /tmp, which the hosts
# do not see.
install_helpers() {
  local f
  for f in fake-nvidia-smi nvidia-container-runtime-hook nfq_delay.py; do
    install -m 755 "$TB_SRC/$f" "$TB_STATE/bin/$f.new"
    mv -f "$TB_STATE/bin/$f.new" "$TB_STATE/bin/$f"
  done
  install -m 755 "$TB_SELF" "$TB_STATE/bin/testbed.sh.new"
  mv -f "$TB_STATE/bin/testbed.sh.new" "$TB_STATE/bin/testbed.sh"
}

# ---------------------------------------------------------------- stand-in engine image
PY=/usr/bin/python3
engine_hash() { # content hash of everything that goes into the image
  {
    echo "engine-image-v1 $("$PY" -V 2>&1) $(busybox 2>&1 | head -1) $(bash --version | head -1)"
    (cd "$TB_SRC" && find engine fake-nvidia-smi -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 |
      LC_ALL=C sort -z | xargs -0 sha256sum)
    sed -n '/^build_rootfs() {/,/^}/p;/^ensure_image() {/,/^}/p' "$TB_SELF"
  } | sha256sum | cut -c1-16
}

copy_libs() { # ROOT FILE...: copy the shared libraries FILEs need into ROOT
  local r=$1 f l
  shift
  for f in "$@"; do
    for l in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*'); do
      [ -e "$r$l" ] || install -D -m 755 "$(readlink -f "$l")" "$r$l"
    done
  done
}

# busybox-static + bash + Debian's python3 (stdlib only) + the stand-in engines, as a rootfs tar
build_rootfs() {
  local out=$1 r a py ver site
  command -v busybox >/dev/null || die "busybox-static is not installed (apt-get install busybox-static)"
  py=$(readlink -f "$PY")
  [ -x "$py" ] || die "$PY not found (Debian's python3 is needed to build the engine image)"
  ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  r=$(mktemp -d "$TB_STATE/cache/rootfs.XXXXXX")
  mkdir -p "$r"/{bin,etc,tmp,root,proc,sys,dev,run,opt,var/log,var/tmp,usr/lib,usr/local/bin}
  cp "$(command -v busybox)" "$r/bin/busybox"
  for a in $("$r/bin/busybox" --list); do [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"; done
  ln -s bin "$r/sbin"
  ln -s ../bin "$r/usr/bin"
  ln -s ../bin "$r/usr/sbin"
  cp "$(readlink -f /bin/bash)" "$r/bin/bash"
  cp "$py" "$r/bin/python$ver"
  ln -sf "python$ver" "$r/bin/python3"
  ln -sf python3 "$r/bin/python"
  tar -C "/usr/lib/python$ver" --exclude=test --exclude=tests --exclude=idlelib --exclude=tkinter \
    --exclude=turtledemo --exclude=ensurepip --exclude=lib2to3 --exclude=distutils --exclude=pydoc_data \
    --exclude='config-*' --exclude=site-packages --exclude=dist-packages --exclude=venv --exclude=sqlite3 \
    --exclude=curses --exclude=dbm --exclude=xmlrpc --exclude='turtle*' -cf - . |
    (mkdir -p "$r/usr/lib/python$ver" && tar -C "$r/usr/lib/python$ver" -xf -)
  # drop extension modules nobody here needs (tests, terminals, databases, TLS: ~10 MB with their libraries)
  find "$r/usr/lib/python$ver/lib-dynload" \( -name '_test*' -o -name '_xx*' -o -name 'xxlimited*' \
    -o -name '_ctypes_test*' -o -name '_sqlite3*' -o -name '_dbm*' -o -name '_gdbm*' -o -name '_curses*' \
    -o -name 'nis.*' -o -name 'ossaudiodev*' -o -name 'audioop*' -o -name 'readline*' -o -name '_ssl*' \
    -o -name '_hashlib*' -o -name '_tkinter*' -o -name '_crypt*' \) -delete
  copy_libs "$r" /bin/bash "$py" "$r/usr/lib/python$ver"/lib-dynload/*.so
  site=$r/usr/local/lib/python$ver/dist-packages
  mkdir -p "$site"
  cp -r "$TB_SRC/engine/standin" "$TB_SRC/engine/shims/." "$site/"
  find "$site" -name __pycache__ -prune -exec rm -rf {} +
  "$py" -m compileall -q -j 1 -s "$r" -p / "$site" >/dev/null
  for a in vllm sglang llama-server rpc-server ray; do
    printf '#!/usr/bin/python3\nimport sys\n\nfrom standin.cli import main\n\nsys.exit(main(%s, sys.argv[1:]))\n' \
      "'$a'" >"$r/usr/local/bin/$a"
    chmod 755 "$r/usr/local/bin/$a"
  done
  printf 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
  printf 'NAME="sparkrun testbed engine stand-in"\nID=sparkrun-testbed\n' >"$r/etc/os-release"
  chmod 1777 "$r/tmp" "$r/var/tmp"
  tar --numeric-owner --owner=0 --group=0 -C "$r" -cf "$out.tmp" .
  mv "$out.tmp" "$out"
  rm -rf "$r"
}

ENGINE_HASH=
ENGINE_TAR=
ensure_engine_tar() {
  ENGINE_HASH=$(engine_hash)
  ENGINE_TAR=$TB_STATE/cache/engine-$ENGINE_HASH.tar
  [ -s "$ENGINE_TAR" ] && return 0
  log "building the stand-in engine rootfs ($ENGINE_HASH)"
  local old
  for old in "$TB_STATE"/cache/engine-*.tar; do [ -e "$old" ] && rm -f "$old"; done
  build_rootfs "$ENGINE_TAR"
  log "engine rootfs: $(du -h "$ENGINE_TAR" | cut -f1)"
}

ensure_image() { # I: import the engine image on host I unless it is there with the current hash
  local i=$1 have
  have=$(hdocker "$i" image inspect -f "{{index .Config.Labels \"$TB_HASH_LABEL\"}}" "$TB_IMAGE" 2>/dev/null || true)
  [ "$have" = "$ENGINE_HASH" ] && return 0
  local old
  old=$(hdocker "$i" image inspect -f '{{.Id}}' "$TB_IMAGE" 2>/dev/null || true)
  hdocker "$i" import \
    --change "ENV PATH=$SYS_PATH" \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV STANDIN_REQUIRE_GPU=1' \
    --change "LABEL $TB_HASH_LABEL=$ENGINE_HASH" \
    --change 'CMD ["/bin/bash"]' \
    "$ENGINE_TAR" "$TB_IMAGE" >/dev/null || return 1
  if [ -n "$old" ]; then hdocker "$i" rmi "$old" >/dev/null 2>&1 || true; fi # the stale one, unless in use
}

# ---------------------------------------------------------------- network
ensure_switch() {
  [ -e "/run/netns/$TB_SW" ] || ip netns add "$TB_SW"
  ip -n "$TB_SW" link set lo up
  ip -n "$TB_SW" link show br0 >/dev/null 2>&1 || ip -n "$TB_SW" link add br0 type bridge
  ip -n "$TB_SW" link set br0 up
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

# ---------------------------------------------------------------- client and host files
known_indices() { # indices with a host key, ascending
  local f
  for f in "$TB_STATE"/keys/host*_ed25519; do
    [ -e "$f" ] || continue
    f=${f##*/host}
    echo "${f%_ed25519}"
  done | sort -n
}
running_indices() {
  local d i
  for d in "$TB_STATE"/h[0-9]*; do
    [ -d "$d" ] || continue
    i=${d##*/h}
    [[ $i =~ ^[0-9]+$ ]] && [ -e "/run/netns/$(ns_of "$i")" ] && init_alive "$i" && echo "$i"
  done | sort -n
  return 0
}

write_client_files() {
  local i kh=$TB_STATE/known_hosts cfg=$TB_STATE/ssh_config
  for i in $(known_indices); do
    echo "$(ip_of "$i"),tb-h$i $(cut -d' ' -f1,2 "$TB_STATE/keys/host${i}_ed25519.pub")"
  done >"$kh.tmp"
  mv "$kh.tmp" "$kh"
  {
    echo "# sparkrun testbed: ssh -F $cfg tb-h1  (or root@$(ip_of 1)), or 'Include $cfg' in ~/.ssh/config"
    for i in $(known_indices); do printf 'Host tb-h%s\n  HostName %s\n' "$i" "$(ip_of "$i")"; done
    cat <<EOF
Host $TB_NET.* tb-h*
  User root
  IdentityFile $TB_STATE/keys/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $kh
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 5
# Multiplexing is off by default; enable per call with:
#   -o ControlMaster=auto -o ControlPath=$TB_STATE/cm/%C -o ControlPersist=60
EOF
  } >"$cfg.tmp"
  mv "$cfg.tmp" "$cfg"
}

write_hosts_file() { # the hosts that are up
  local i
  for i in $(running_indices); do ip_of "$i"; done >"$TB_STATE/hosts.tmp"
  mv "$TB_STATE/hosts.tmp" "$TB_STATE/hosts"
}

# cluster-file DIR: the sparkrun cluster `testbed` (read by `sparkrun cluster ...`/`--cluster testbed`)
write_cluster_file() {
  local dir=$1 f hosts
  f=$dir/clusters/testbed.yaml
  hosts=$(paste -sd, "$TB_STATE/hosts" 2>/dev/null | sed 's/,/, /g')
  mkdir -p "$dir/clusters"
  cat >"$f.tmp" <<EOF
name: testbed
description: $CLUSTER_DESC
hosts: [$hosts]
ssh:
  user: root
  port: 22
  identity_file: $TB_STATE/keys/id_ed25519
  options:                    # each becomes \`ssh -o Key=Value\`
    UserKnownHostsFile: $TB_STATE/known_hosts
    StrictHostKeyChecking: "yes"
    IdentitiesOnly: "yes"
  connect_timeout: 5
container:
  ulimits: {}                 # this VM's hard limits reject memlock=-1 / nofile=65535
  shm_size: 1g
EOF
  mv "$f.tmp" "$f"
}
sparkrun_config_dir() { echo "${SPARKRUN_CONFIG_DIR:-${XDG_CONFIG_HOME:-$HOME/.config}/sparkrun}"; }

# per-host home, sshd_config, /etc/hosts. Bind-mounted single files (hosts, hostname) are rewritten in place
# (same inode), directories may be replaced.
write_host_files() {
  local i=$1 H ip j
  H=$(hdir "$i")
  ip=$(ip_of "$i")
  mkdir -p "$H"/{home/.ssh,home/.cache/huggingface,run/sshd,tmp,shm,log,.mnt/cg,.mnt/class} "$(ddir "$i")"
  chmod 700 "$H/home" "$H/home/.ssh"
  chmod 755 "$H/run" "$H/run/sshd"
  chmod 1777 "$H/tmp" "$H/shm"
  install -m 600 "$TB_STATE/keys/id_ed25519.pub" "$H/home/.ssh/authorized_keys"
  install -m 600 "$TB_STATE/keys/id_ed25519" "$H/home/.ssh/id_ed25519" # hosts can ssh to each other
  install -m 644 "$TB_STATE/keys/id_ed25519.pub" "$H/home/.ssh/id_ed25519.pub"
  install -m 644 "$TB_STATE/known_hosts" "$H/home/.ssh/known_hosts"
  [ -f "$H/home/.bashrc" ] || cp /etc/skel/.bashrc "$H/home/.bashrc" 2>/dev/null || true
  echo "tb-h$i" >"$H/hostname"
  {
    echo "127.0.0.1 localhost"
    echo "::1 localhost ip6-localhost ip6-loopback"
    for j in $(known_indices); do echo "$(ip_of "$j") tb-h$j"; done
  } >"$H/hosts"
  echo '{}' >"$H/daemon.json"
  local kex=
  [ "${TB_FAST_KEX:-1}" = 1 ] && kex="KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org"
  cat >"$H/sshd_config" <<EOF
Port 22
ListenAddress $ip
AddressFamily inet
HostKey $TB_STATE/keys/host${i}_ed25519
PidFile /run/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AuthorizedKeysFile .ssh/authorized_keys
StrictModes yes
MaxStartups 100:30:200
MaxSessions 100
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding yes
AcceptEnv LANG LC_*
SetEnv TB_HOST=tb-h$i
$kex
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
}

setup_fakebin() { # I GPUS: nvidia-smi + container hook stubs on the host's PATH (overlaid on /usr/local/bin)
  local i=$1 n=$2 H
  H=$(hdir "$i")
  rm -rf "$H/fakebin"
  ((n > 0)) || return 0
  mkdir -p "$H/fakebin"
  cp "$TB_STATE/bin/fake-nvidia-smi" "$H/fakebin/nvidia-smi"
  # dockerd registers its "nvidia" device driver (so `docker run --gpus ...` works) only if this hook is on its
  # PATH when it starts. The stub also copies nvidia-smi into containers started with --gpus, like the real one.
  cp "$TB_STATE/bin/nvidia-container-runtime-hook" "$H/fakebin/nvidia-container-runtime-hook"
  echo "$n" >"$H/fakebin/.tb-fake-gpus"
}

# ---------------------------------------------------------------- fake InfiniBand
write_ib_tree() { # I: the fake /sys/class/infiniband tree under $H/ib
  local i=$1 H d p ip4 hex mac g
  H=$(hdir "$i")
  ip4=$(ib_ip_of "$i")
  rm -rf "$H/ib"
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
  printf '0000:0000:0000:0000:0000:ffff:%s\n' "$hex" >"$p/gids/2"
  printf '0000:0000:0000:0000:0000:ffff:%s\n' "$hex" >"$p/gids/3"
  printf 'IB/RoCE v1\n' >"$p/gid_attrs/types/0"
  printf 'RoCE v2\n' >"$p/gid_attrs/types/1"
  printf 'IB/RoCE v1\n' >"$p/gid_attrs/types/2"
  printf 'RoCE v2\n' >"$p/gid_attrs/types/3"
  for g in 0 1 2 3; do printf '%s\n' "$IB_IF" >"$p/gid_attrs/ndevs/$g"; done
  echo "$mac" >"$H/ib.mac"
}

ib_netdev() { # I on|off: the CX7-named netdev with the IB address (a veth: this kernel may lack "dummy"; its
  # peer tbi<i> waits, unplugged from the bridge, in the switch namespace)
  local i=$1 ns
  ns=$(ns_of "$i")
  if [ "$2" = on ]; then
    if ! ip -n "$ns" link show "$IB_IF" >/dev/null 2>&1; then
      ip -n "$TB_SW" link del "tbi$i" 2>/dev/null || true
      ip link add "tbi$i" type veth peer name "tbj$i"
      ip link set "tbi$i" netns "$TB_SW"
      ip link set "tbj$i" netns "$ns"
      ip -n "$ns" link set "tbj$i" name "$IB_IF"
      ip -n "$ns" link set "$IB_IF" address "$(cat "$(hdir "$i")/ib.mac")"
    fi
    ip -n "$TB_SW" link set "tbi$i" up
    ip -n "$ns" addr replace "$(ib_ip_of "$i")/32" dev "$IB_IF"
    ip -n "$ns" link set "$IB_IF" up
  else
    ip -n "$ns" link del "$IB_IF" 2>/dev/null || true
    ip -n "$TB_SW" link del "tbi$i" 2>/dev/null || true
  fi
}

# ---------------------------------------------------------------- the host itself
# Runs INSIDE: netns tb-h<i> (nsenter) + new private mount, UTS and PID namespaces (unshare), as PID 1 of the
# host; /proc is already the host's own (unshare --mount-proc).
hostinit() {
  local i=$1 H d n
  H=$(hdir "$i")
  hostname "tb-h$i"
  # Fresh sysfs so /sys/class/net shows this netns; keep the cgroup hierarchy (docker needs it).
  mount --rbind /sys/fs/cgroup "$H/.mnt/cg"
  umount -l /sys
  mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
  mount --move "$H/.mnt/cg" /sys/fs/cgroup
  # /sys/class: a tmpfs with bind mounts of the real class dirs, so `ib HOST on` can add "infiniband".
  mount --bind /sys/class "$H/.mnt/class"
  mount -t tmpfs -o mode=755,size=64k,nosuid,nodev,noexec tb-sysclass /sys/class
  for d in "$H/.mnt/class"/*; do
    n=${d##*/}
    mkdir "/sys/class/$n"
    mount --bind "$d" "/sys/class/$n"
  done
  umount -l "$H/.mnt/class"
  if [ -f "$H/ib.on" ]; then
    mkdir /sys/class/infiniband
    mount --bind "$H/ib" /sys/class/infiniband
  fi
  mount --bind "$H/run" /run # /var/run -> /run: docker.sock, sshd privsep dir
  mount --bind "$H/home" /root
  mount --bind "$H/tmp" /tmp
  mount --bind "$H/shm" /dev/shm
  mount --bind "$H/hosts" /etc/hosts
  mount --bind "$H/hostname" /etc/hostname
  if [ -d "$H/fakebin" ]; then # fake GPUs: nvidia-smi and the container hook on this host's PATH only
    mount -t overlay overlay -o "lowerdir=$H/fakebin:/usr/local/bin" /usr/local/bin
  fi
  cd /
  setsid env -i PATH="$SYS_PATH" HOME=/root dockerd --config-file "$H/daemon.json" \
    --data-root "$(ddir "$i")" --exec-root /run/docker --pidfile /run/dockerd.pid \
    -H unix:///run/docker.sock --bridge=none --iptables=false --ip6tables=false --ip-forward=false \
    --ip-masq=false --userland-proxy=false --cgroup-parent="/tb-h$i" --log-level=warn \
    </dev/null >>"$H/log/dockerd.log" 2>&1 &
  env -i PATH="$SYS_PATH" /usr/sbin/sshd -f "$H/sshd_config" -E "$H/log/sshd.log" || echo "sshd failed to start" >&2
  touch /run/.tb-started
  # stay as the namespace's PID 1 (tini reaps orphans); when it dies, everything in the host dies
  exec /usr/bin/docker-init -- sleep infinity
}

fail() { # I REASON: record why host I failed
  echo "$2" >"$(hdir "$1")/failure"
  return 1
}

host_start() {
  local i=$1 H p n cg
  H=$(hdir "$i")
  create_host_net "$i" || { fail "$i" "could not create the network namespace"; return 1; }
  if [ -f "$H/ib.on" ]; then ib_netdev "$i" on; fi
  stat -L -c %i "/run/netns/$(ns_of "$i")" >"$H/netns.ino"
  cg=$CG_PIDS/tb-h$i/init
  mkdir -p "$cg"
  rm -f "$H/init.pid" "$H/run/.tb-started"
  # pid $! = unshare, which waits for the host's PID 1 and SIGKILLs it (= the whole host) if it dies
  (
    echo "$BASHPID" >"$cg/cgroup.procs"
    exec setsid nsenter --net="/run/netns/$(ns_of "$i")" -- \
      unshare --mount --uts --pid --fork --kill-child --mount-proc --propagation private -- \
      "$TB_STATE/bin/testbed.sh" __hostinit "$i"
  ) </dev/null >>"$H/log/init.log" 2>&1 9>&- &
  p=$!
  disown "$p" # no "Killed" job notice when `down` kills it
  echo "$p" >"$H/init.pid"
  for ((n = 0; n < 100; n++)); do # until the subshell has exec'd into unshare
    init_alive "$i" && return 0
    kill -0 "$p" 2>/dev/null || break
    sleep 0.05
  done
  fail "$i" "host init did not start: $(tail -n 3 "$H/log/init.log" 2>/dev/null | tr '\n' ' ')"
}

load_budget() { # seconds a host may take to get ready: TB_READY_TIMEOUT, scaled up by load per core
  local base=${TB_READY_TIMEOUT:-60} cores load
  cores=$(nproc)
  load=$(cut -d' ' -f1 /proc/loadavg)
  awk -v b="$base" -v l="$load" -v c="$cores" 'BEGIN { f = l / c; if (f < 1) f = 1; t = b * f; if (t > 5 * b) t = 5 * b; printf "%d", t }'
}

wait_host_ready() {
  local i=$1 H t0 now budget last=0
  H=$(hdir "$i")
  t0=$(date +%s)
  budget=$(load_budget)
  while :; do
    init_alive "$i" || { fail "$i" "host init exited: $(tail -n 3 "$H/log/init.log" 2>/dev/null | tr '\n' ' ')"; return 1; }
    if [ -e "$H/run/.tb-started" ]; then
      if ! dockerd_pid "$i" >/dev/null; then
        sleep 0.2 # it may be just exiting after a failure; let it finish its log
        local why
        why=$(awk '/^=== /{l=""; next} NF{l=$0} END{print l}' "$H/log/dockerd.log" 2>/dev/null)
        fail "$i" "dockerd exited: ${why:-(no log output: killed?)}"
        return 1
      fi
      sshd_pid "$i" >/dev/null || { fail "$i" "sshd is not running: $(tail -n 2 "$H/log/sshd.log" "$H/log/init.log" 2>/dev/null | tr '\n' ' ')"; return 1; }
      docker_ok "$i" && return 0
    fi
    now=$(date +%s)
    if ((now - last >= 5)); then # re-evaluate the budget as the load changes
      budget=$(load_budget)
      last=$now
    fi
    if ((now - t0 > budget)); then
      fail "$i" "not ready after $((now - t0)) s (load $(cut -d' ' -f1-3 /proc/loadavg)); dockerd: $(tail -n 1 "$H/log/dockerd.log" 2>/dev/null)"
      return 1
    fi
    sleep 0.1
  done
}

host_up() { # I GPUS IB: bring host I up (retrying); 0 = up, 1 = failed (reason in $H/failure)
  local i=$1 gpus=$2 ib=$3 H attempt tries=${TB_RETRIES:-3}
  H=$(hdir "$i")
  mkdir -p "$H/log"
  rm -f "$H/failure"
  if host_healthy "$i"; then
    write_host_files "$i"  # refresh known_hosts and /etc/hosts for newly added peers
    create_host_net "$i"   # and plug its cable back in (`link HOST down`)
    if ensure_image "$i"; then
      log "h$i ($(ip_of "$i")) already up"
      return 0
    fi
  fi
  for ((attempt = 1; attempt <= tries; attempt++)); do
    host_down "$i" quiet
    mkdir -p "$H/log"
    rm -f "$H/failure"
    echo "=== $(date '+%F %T') start attempt $attempt" | tee -a "$H/log/dockerd.log" >>"$H/log/init.log"
    write_host_files "$i"
    setup_fakebin "$i" "$gpus"
    if [ "$ib" = 1 ]; then
      write_ib_tree "$i"
      touch "$H/ib.on"
    else
      rm -rf "$H/ib" "$H/ib.on"
    fi
    if ((attempt > 1)); then rm -rf "$(ddir "$i")"; fi # in case the data root is what broke
    if host_start "$i" && wait_host_ready "$i"; then
      if reset_docker "$i" 2>>"$H/log/init.log" && ensure_image "$i" 2>>"$H/log/init.log"; then
        ((attempt == 1)) || log "h$i ($(ip_of "$i")) up after $attempt attempts"
        return 0
      fi
      fail "$i" "could not load $TB_IMAGE: $(tail -n 1 "$H/log/init.log")" || true
    fi
    log "h$i: attempt $attempt/$tries failed: $(cat "$H/failure" 2>/dev/null)"
    sleep "$attempt"
  done
  host_down "$i" quiet
  return 1
}

# A freshly started host has no containers, volumes or networks and no image but the engine image, whatever the
# kept data root held (it is kept only so that `up` need not import the image again).
reset_docker() {
  local i=$1 keep ids=()
  mapfile -t ids < <(hdocker "$i" ps -aq)
  if ((${#ids[@]})); then hdocker "$i" rm -f "${ids[@]}" >/dev/null || return 1; fi
  keep=$(hdocker "$i" image inspect -f '{{.Id}}' "$TB_IMAGE" 2>/dev/null || true)
  local id ref
  while read -r id ref; do
    if [ "$ref" = "<none>:<none>" ]; then
      [ "$id" = "$keep" ] || hdocker "$i" rmi -f "$id" >/dev/null 2>&1 || true
    elif [ "$ref" != "$TB_IMAGE" ]; then
      hdocker "$i" rmi -f "$ref" >/dev/null 2>&1 || true # another tag of the engine image only loses the tag
    fi
  done < <(hdocker "$i" images -a --no-trunc --format '{{.ID}} {{.Repository}}:{{.Tag}}')
  mapfile -t ids < <(hdocker "$i" volume ls -q)
  if ((${#ids[@]})); then hdocker "$i" volume rm -f "${ids[@]}" >/dev/null || return 1; fi
  hdocker "$i" network prune -f >/dev/null
}

host_down() { # I [quiet]: kill everything of host I and remove its namespace, veth and cgroups
  local i=$1 quiet=${2:-} H ns left p n
  H=$(hdir "$i")
  ns=$(ns_of "$i")
  kill_pidfile "$H/delay.pid" nfq_delay.py 2
  # unshare ignores TERM; KILL it and --kill-child SIGKILLs the host's PID 1, which takes down the whole PID
  # namespace: sshd, dockerd, containerd, shims and every container.
  kill_pidfile "$H/init.pid" "__hostinit $i" 5 KILL
  # Safety net: anything still in this host's cgroups or netns was started inside the testbed.
  for ((n = 0; n < 200; n++)); do
    left=$(host_pids "$i")
    [ -n "$left" ] || break
    if ((n >= 25)); then # the PID namespace had half a second to die on its own; the rest were started from outside
      if ((n == 25)) && [ -z "$quiet" ]; then log "h$i: killing leftover processes: $(echo "$left" | tr '\n' ' ')"; fi
      for p in $left; do kill -KILL "$p" 2>/dev/null || true; done
    fi
    sleep 0.02
  done
  ip -n "$TB_SW" link del "tbv$i" 2>/dev/null || true
  if [ -e "/run/netns/$ns" ]; then ip netns del "$ns" 2>/dev/null || log "h$i: could not delete netns $ns"; fi
  for p in $(cg_dirs "$i"); do
    for ((n = 0; n < 40; n++)); do
      find "$p" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [ -d "$p" ] || break
      sleep 0.05
    done
  done
  # a fresh /run at the next start, like a reboot (a crash leaves dockerd.pid and sockets behind)
  rm -rf "$H/run"
  return 0
}

# ---------------------------------------------------------------- leftovers
# Everything a testbed could leave behind, found without trusting the state dir (pid files can be stale).
leftovers() {
  local out=() l p ino inos=() c
  for l in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^tb-(h[0-9]+|sw)$' || true); do out+=("netns $l"); done
  ip link show "$TB_ROOTIF" >/dev/null 2>&1 && out+=("link $TB_ROOTIF")
  for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | grep -E '^tb[vij][0-9]+' || true); do out+=("link $l"); done
  for l in /sys/fs/cgroup/tb-h[0-9]* /sys/fs/cgroup/*/tb-h[0-9]*; do [ -d "$l" ] && out+=("cgroup $l"); done
  while read -r l; do out+=("mount $l"); done < <(awk -v s="$TB_STATE/" '$5 ~ "^/run/netns/tb-" || index($4 "/", s) == 1 || index($5 "/", s) == 1 {print $5}' /proc/self/mountinfo)
  for l in "$TB_STATE"/h*/netns.ino; do [ -s "$l" ] && inos+=("$(cat "$l")"); done
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" = $$ ] && continue
    c=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || continue
    case $c in
      *"__hostinit "* | *"nfq_delay.py"* | *"$TB_STATE/h"[0-9]* | *"--cgroup-parent=/tb-h"*) out+=("process $p: ${c:0:120}"); continue ;;
    esac
    if ((${#inos[@]})); then
      ino=$(stat -L -c %i "/proc/$p/ns/net" 2>/dev/null) || continue
      for l in "${inos[@]}"; do [ "$ino" = "$l" ] && out+=("process $p in a testbed netns: ${c:0:120}"); done
    fi
  done
  if command -v iptables-save >/dev/null && iptables-save 2>/dev/null | grep -qE "$TB_NET\.|tb0|tbv[0-9]"; then
    out+=("iptables rules mentioning the testbed")
  fi
  ((${#out[@]} == 0)) && return 0
  printf '%s\n' "${out[@]}"
  return 1
}

# ---------------------------------------------------------------- subcommands
cmd_up() {
  local n=${1:-} i t0 p rc=0 gpus=${TB_FAKE_GPUS:-1} ib=${TB_FAKE_IB:-0}
  if ! [[ $n =~ ^[0-9]+$ ]] || ! ((10#$n >= 1 && 10#$n <= TB_MAX_HOSTS)); then die "usage: up N (1..$TB_MAX_HOSTS)"; fi
  n=$((10#$n))
  [[ $gpus =~ ^[0-9]+$ ]] || die "TB_FAKE_GPUS must be a number"
  need_root
  check_state_dir
  for p in ip nsenter unshare dockerd sshd ssh-keygen flock docker busybox; do
    command -v "$p" >/dev/null || die "$p not found (apt-get install -y openssh-server docker.io rsync busybox-static iproute2 iptables)"
  done
  t0=$(date +%s%N)
  take_lock
  ensure_keys
  install_helpers
  ensure_engine_tar
  ensure_switch
  for ((i = 1; i <= n; i++)); do
    ensure_hostkey "$i"
    mkdir -p "$(hdir "$i")/log"
  done
  write_client_files
  local par=${TB_PARALLEL:-0} running=0
  for ((i = 1; i <= n; i++)); do
    if ((par > 0 && running >= par)); then
      wait -n || true
      running=$((running - 1))
    fi
    host_up "$i" "$gpus" "$ib" &
    running=$((running + 1))
  done
  wait || true
  # the verdict comes from the hosts themselves, not from exit statuses (`wait -n` may have reaped some)
  for ((i = 1; i <= n; i++)); do
    if [ -s "$(hdir "$i")/failure" ]; then
      rc=1
    elif ! host_healthy "$i"; then
      echo "not healthy after up (no failure recorded; see its logs)" >"$(hdir "$i")/failure"
      rc=1
    fi
  done
  # hosts above N that are still up get the refreshed peer lists as well
  for i in $(running_indices); do ((i > n)) && write_host_files "$i"; done
  write_hosts_file
  write_cluster_file "$(sparkrun_config_dir)"
  if ((rc != 0)); then
    for ((i = 1; i <= n; i++)); do
      local H
      H=$(hdir "$i")
      [ -s "$H/failure" ] || continue
      echo "[testbed] h$i ($(ip_of "$i")) FAILED: $(cat "$H/failure")" >&2
      for p in init dockerd sshd; do
        [ -s "$H/log/$p.log" ] || continue
        echo "--- h$i $H/log/$p.log (last 15 lines) ---" >&2
        tail -n 15 "$H/log/$p.log" >&2
      done
    done
    die "some hosts failed to come up (see above)"
  fi
  log "up $n done in $((($(date +%s%N) - t0) / 1000000)) ms; hosts: $(paste -sd' ' "$TB_STATE/hosts")"
  log "ssh -F $TB_STATE/ssh_config root@$(ip_of 1) docker ps    |  cluster file: $(sparkrun_config_dir)/clusters/testbed.yaml"
}

remove_cluster_file() { # only our own file, so a stale cluster never sends traffic out of the default route
  local f
  f=$(sparkrun_config_dir)/clusters/testbed.yaml
  if [ -f "$f" ] && grep -qF "description: $CLUSTER_DESC" "$f"; then rm -f "$f"; fi
}

cmd_down() {
  local purge=${1:-} d i pids=() p idx=()
  need_root
  take_lock
  for d in "$TB_STATE"/h[0-9]*; do
    [ -d "$d" ] || continue
    i=${d##*/h}
    [[ $i =~ ^[0-9]+$ ]] && idx+=("$i")
  done
  for d in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^tb-h[0-9]+$' || true); do idx+=("${d#tb-h}"); done
  for d in $(printf '%s\n' "${idx[@]}" | sort -un); do
    host_down "$d" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || true; done
  for p in "$TB_STATE"/cm/*; do # client-side ControlMaster processes that used $TB_STATE/cm
    if [ -S "$p" ]; then ssh -o ControlPath="$p" -O exit dummy >/dev/null 2>&1 || true; fi
    rm -f "$p"
  done
  ip link del "$TB_ROOTIF" 2>/dev/null || true
  if [ -e "/run/netns/$TB_SW" ]; then ip netns del "$TB_SW"; fi
  rm -rf "$TB_STATE"/h[0-9]* "$TB_STATE/hosts"
  remove_cluster_file
  if [ "$purge" = --purge ]; then find "$TB_STATE" -mindepth 1 -maxdepth 1 ! -name lock -exec rm -rf {} +; fi
  local left
  if left=$(leftovers); then
    log "down: clean (no tb-* netns, links, cgroups, mounts or testbed processes)"
  else
    log "down: LEFTOVERS:"
    printf '  %s\n' "$left" >&2
    return 1
  fi
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
pss_kb() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }

all_testbed_pids() {
  local i
  for i in $(running_indices); do host_pids "$i"; done
  return 0
}
cmd_mem() {
  local p t=0 k
  for p in $(all_testbed_pids | sort -un); do
    k=$(pss_kb "$p")
    t=$((t + ${k:-0}))
  done
  echo "$t"
}

cmd_status() {
  local d i H ip st sp dp nc gp ib ln sh dl rc=0 any=0
  printf '%-5s %-12s %-7s %-6s %-16s %-16s %-4s %-3s %-5s %-12s %s\n' HOST IP STATE LINK SSHD\ pid/RSS DOCKERD\ pid/RSS CTRS GPU IB SHAPE/DELAY IMAGE
  for d in "$TB_STATE"/h[0-9]*; do
    [ -d "$d" ] || continue
    i=${d##*/h}
    [[ $i =~ ^[0-9]+$ ]] || continue
    any=1
    H=$(hdir "$i")
    ip=$(ip_of "$i")
    local im=-
    sp=- dp=- nc=- gp=0 ib=off ln=- sh=- dl=-
    if host_healthy "$i"; then st=up; else st=down; rc=1; fi
    p=$(sshd_pid "$i") && sp="$p/$(rss_kb "$p")"
    p=$(dockerd_pid "$i") && dp="$p/$(rss_kb "$p")"
    if [ "$st" = up ]; then
      nc=$(hdocker "$i" ps -q 2>/dev/null | wc -l || true)
      local have
      have=$(hdocker "$i" image inspect -f "{{index .Config.Labels \"$TB_HASH_LABEL\"}}" "$TB_IMAGE" 2>/dev/null || true)
      if [ -z "$have" ]; then im=missing; elif [ "$have" = "$(engine_hash)" ]; then im=current; else im=stale; fi
    fi
    [ -f "$H/fakebin/.tb-fake-gpus" ] && gp=$(cat "$H/fakebin/.tb-fake-gpus")
    [ -f "$H/ib.on" ] && ib=on
    if [ -e "/run/netns/$TB_SW" ]; then
      ln=$(ip -n "$TB_SW" -o link show "tbv$i" 2>/dev/null | grep -q 'state UP' && echo up || echo down)
      sh=$(tc -n "$TB_SW" qdisc show dev "tbv$i" 2>/dev/null | grep -o 'rate [^ ]*' | head -1 | cut -d' ' -f2 || true)
    fi
    [ -s "$H/delay.ms" ] && pid_ok "$H/delay.pid" nfq_delay.py && dl="$(cat "$H/delay.ms")ms"
    printf '%-5s %-12s %-7s %-6s %-16s %-16s %-4s %-3s %-5s %-12s %s\n' "h$i" "$ip" "$st" "$ln" "$sp" "$dp" "$nc" "$gp" "$ib" "${sh:--}/$dl" "$im"
  done
  if [ -e "/run/netns/$TB_SW" ]; then
    echo "switch: netns $TB_SW; control $TB_ROOTIF $(ip -4 -o addr show "$TB_ROOTIF" 2>/dev/null | awk '{print $4}'); state dir $TB_STATE"
  else
    echo "switch: down (state dir $TB_STATE)"
    rc=1
  fi
  ((any)) || rc=1
  return $rc
}

cmd_running() {
  local i
  for i in $(running_indices); do host_healthy "$i" && ip_of "$i"; done
  return 0
}

exec_target() { # I -> root pid of the host's PID 1, or die
  local p
  p=$(host_pid1 "$1") || die "h$1 is not running"
  echo "$p"
}

cmd_exec() { # run CMD inside HOST's namespaces (no ssh). One arg = shell string, several = argv.
  local i p
  i=$(host_idx "${1:?usage: exec HOST [CMD...]}")
  shift
  need_root
  p=$(exec_target "$i")
  (($# > 0)) || set -- bash -l
  # shellcheck disable=SC2016 # expanded by the inner bash
  exec nsenter -t "$p" --mount --uts --net --pid --wd=/ -- \
    env -i PATH="$SYS_PATH" HOME=/root TERM="${TERM:-dumb}" TB_HOST="tb-h$i" LANG=C.UTF-8 \
    bash -c 'cd /root; if [ $# -eq 1 ]; then eval "$1"; else exec "$@"; fi' bash "$@"
}

cmd_ssh() {
  local i
  i=$(host_idx "${1:?usage: ssh HOST [CMD...]}")
  shift
  # without the bridge, 10.213.0.x would be routed out through the default gateway
  [ -e "/sys/class/net/$TB_ROOTIF" ] || die "the testbed is down"
  exec ssh -F "$TB_STATE/ssh_config" "root@$(ip_of "$i")" "$@"
}

# delay HOST MS|off: like `tc qdisc add dev eth0 root netem delay MSms` inside the host. This kernel has no
# sch_netem, so it is an iptables NFQUEUE rule in the host's own netns + nfq_delay.py (in the host's cgroup).
cmd_delay() {
  local i ms H ns q=7 n
  i=$(host_idx "${1:?usage: delay HOST MS|off}")
  ms=${2:?usage: delay HOST MS|off}
  need_root
  take_lock
  H=$(hdir "$i")
  ns=$(ns_of "$i")
  init_alive "$i" || die "h$i is not running"
  local rule=(POSTROUTING -o eth0 -j NFQUEUE --queue-num "$q" --queue-bypass)
  while nsenter --net="/run/netns/$ns" iptables -t mangle -D "${rule[@]}" 2>/dev/null; do :; done
  kill_pidfile "$H/delay.pid" nfq_delay.py 5
  rm -f "$H/delay.ms"
  if [ "$ms" = off ] || [ "$ms" = 0 ]; then
    log "h$i: delay off"
    return 0
  fi
  [[ $ms =~ ^[0-9]+$ ]] || die "MS must be an integer or off"
  (
    echo "$BASHPID" >"$CG_PIDS/tb-h$i/init/cgroup.procs"
    exec nsenter --net="/run/netns/$ns" setsid "$PY" "$TB_STATE/bin/nfq_delay.py" "$q" "$ms" "$H/delay.pid"
  ) </dev/null >>"$H/log/delay.log" 2>&1 9>&- &
  local bg=$!
  for ((n = 0; n < 100; n++)); do # the pid file appears once the queue is bound
    pid_ok "$H/delay.pid" nfq_delay.py && break
    kill -0 "$bg" 2>/dev/null || break
    sleep 0.05
  done
  pid_ok "$H/delay.pid" nfq_delay.py || die "the delayer did not start: $(tail -n 3 "$H/log/delay.log")"
  nsenter --net="/run/netns/$ns" iptables -t mangle -A "${rule[@]}"
  echo "$ms" >"$H/delay.ms"
  log "h$i: +${ms} ms on everything eth0 sends (NFQUEUE $q, pid $(pid_of "$H/delay.pid"))"
}

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

# shape HOST RATE|off: tbf on both ends of the link, i.e. RATE in each direction
cmd_shape() {
  local h=${1:?usage: shape HOST|control RATE|off} rate=${2:?usage: shape HOST|control RATE|off} ns dev bits burst
  need_root
  take_lock
  [ -e "/run/netns/$TB_SW" ] || die "the testbed is not up"
  if [ "$rate" != off ]; then
    [[ $rate =~ ^([0-9]+)(bit|kbit|mbit|gbit)$ ]] || die "RATE like 200mbit, 1gbit, 500kbit (or off)"
    case ${BASH_REMATCH[2]} in
      bit) bits=${BASH_REMATCH[1]} ;;
      kbit) bits=$((BASH_REMATCH[1] * 1000)) ;;
      mbit) bits=$((BASH_REMATCH[1] * 1000000)) ;;
      gbit) bits=$((BASH_REMATCH[1] * 1000000000)) ;;
    esac
    burst=$((bits / 8 / 100)) # 10 ms worth of bytes, at least 16 KiB
    ((burst >= 16384)) || burst=16384
  fi
  while read -r ns dev; do
    ipn "$ns" link show "$dev" >/dev/null 2>&1 || die "$h is not running ($dev missing)"
    tcn "$ns" qdisc del dev "$dev" root 2>/dev/null || true
    [ "$rate" = off ] || tcn "$ns" qdisc add dev "$dev" root tbf rate "$rate" burst "$burst" latency 50ms
  done < <(link_devs "$h")
  log "$h: shape $rate"
}

cmd_link() {
  local h=${1:?usage: link HOST|control up|down} st=${2:?usage: link HOST|control up|down}
  [ "$st" = up ] || [ "$st" = down ] || die "usage: link HOST|control up|down"
  need_root
  take_lock
  [ -e "/run/netns/$TB_SW" ] || die "the testbed is not up"
  local ns dev
  read -r ns dev < <(link_devs "$h")
  ipn "$ns" link set "$dev" "$st" || die "$h is not running"
  log "$h: link $st"
}

cmd_ib() {
  local i st=${2:?usage: ib HOST on|off} H p
  i=$(host_idx "${1:?usage: ib HOST on|off}")
  need_root
  take_lock
  H=$(hdir "$i")
  p=$(exec_target "$i")
  case $st in
    on)
      write_ib_tree "$i"
      touch "$H/ib.on"
      ib_netdev "$i" on
      # shellcheck disable=SC2016 # expanded by the inner sh
      nsenter -t "$p" --mount -- sh -c 'mountpoint -q /sys/class/infiniband && exit 0
        mkdir -p /sys/class/infiniband && mount --bind "$1" /sys/class/infiniband' sh "$H/ib"
      ;;
    off)
      # shellcheck disable=SC2016 # expanded by the inner sh
      nsenter -t "$p" --mount -- sh -c 'if mountpoint -q /sys/class/infiniband; then umount /sys/class/infiniband; fi
        rmdir /sys/class/infiniband 2>/dev/null || true'
      ib_netdev "$i" off
      rm -rf "$H/ib" "$H/ib.on"
      ;;
    *) die "usage: ib HOST on|off" ;;
  esac
  log "h$i: fake InfiniBand $st"
}

cmd_image() {
  local i idx=() pids=() p rc=0
  need_root
  take_lock
  ensure_engine_tar
  if (($#)); then for p in "$@"; do idx+=("$(host_idx "$p")"); done; else mapfile -t idx < <(running_indices); fi
  for i in "${idx[@]}"; do
    ensure_image "$i" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  ((rc == 0)) || die "could not load $TB_IMAGE everywhere"
  log "$TB_IMAGE ($ENGINE_HASH) on: ${idx[*]/#/h}"
}

usage() {
  sed -n '2,/^set -euo/p' "$TB_SELF" | sed '$d' | sed 's/^# \{0,1\}//'
}

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  status) cmd_status ;;
  running) cmd_running ;;
  hosts) cat "$TB_STATE/hosts" 2>/dev/null || true ;;
  exec) shift; cmd_exec "$@" ;;
  ssh) shift; cmd_ssh "$@" ;;
  delay) shift; cmd_delay "$@" ;;
  shape) shift; cmd_shape "$@" ;;
  link) shift; cmd_link "$@" ;;
  ib) shift; cmd_ib "$@" ;;
  image) shift; cmd_image "$@" ;;
  cluster-file) write_cluster_file "${2:-$(sparkrun_config_dir)}" ;;
  leftovers) leftovers ;;
  mem) cmd_mem ;;
  __hostinit) shift; hostinit "$@" ;;
  -h | --help | help) usage ;;
  *) usage; exit 2 ;;
esac
