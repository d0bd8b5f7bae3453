# shellcheck shell=bash
# testbed lib: names and addresses, processes and pid files, cgroups, the lock. Sourced by scripts/testbed.sh.
# shellcheck disable=SC2154  # settings come from scripts/testbed.sh

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
