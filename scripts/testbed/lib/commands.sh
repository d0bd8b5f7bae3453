# shellcheck shell=bash
# testbed lib: the subcommands. Sourced by scripts/testbed.sh.
# shellcheck disable=SC2154  # settings come from scripts/testbed.sh

# ---------------------------------------------------------------- subcommands
cmd_up() {
  local n=${1:-} i t0 p rc=0 gpus=${TB_FAKE_GPUS:-1} flags=()
  if ! [[ $n =~ ^[0-9]+$ ]] || ! ((10#$n >= 1 && 10#$n <= TB_MAX_HOSTS)); then die "usage: up N (1..$TB_MAX_HOSTS)"; fi
  n=$((10#$n))
  [[ $gpus =~ ^[0-9]+$ ]] || die "TB_FAKE_GPUS must be a number"
  need_root
  check_state_dir
  for p in ip nsenter unshare dockerd sshd ssh ssh-keygen flock docker busybox sudo useradd; do
    command -v "$p" >/dev/null || die "$p not found (scripts/install-deps.sh, or apt-get install -y openssh-server docker.io rsync busybox-static iproute2 iptables sudo python3-yaml docker-registry)"
  done
  for ((i = 1; i <= 10#$n; i++)); do # check every host's state flags before starting anything
    mapfile -t flags < <(host_state_flags "$i")
    state_parse "${flags[@]}" >/dev/null
  done
  t0=$(date +%s%N)
  take_lock
  ensure_keys
  install_helpers
  ensure_engine_tar
  ensure_switch
  host_template
  for ((i = 1; i <= n; i++)); do
    ensure_hostkey "$i"
    ensure_user_keys "$i"
    mkdir -p "$(hdir "$i")/log"
  done
  write_client_files
  local par=${TB_PARALLEL:-0} running=0
  for ((i = 1; i <= n; i++)); do
    if ((par > 0 && running >= par)); then
      wait -n || true
      running=$((running - 1))
    fi
    host_up "$i" "$gpus" &
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
  if ((rc == 0)) && [ "${TB_REGISTRY_UP:-0}" = 1 ]; then registry_start || rc=1; fi
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

remove_cluster_file() { # only our own files, so a stale cluster never sends traffic out of the default route
  local f
  for f in "$(sparkrun_config_dir)"/clusters/*.yaml; do
    if [ -f "$f" ] && grep -qxF "description: $CLUSTER_DESC" "$f"; then rm -f "$f"; fi
  done
}

cmd_down() {
  local purge='' force='' a d i pids=() p idx=()
  for a in "$@"; do
    case $a in
      --purge) purge=--purge ;;
      --force) force=1 ;;
      *) die "usage: down [--purge] [--force]" ;;
    esac
  done
  need_root
  take_lock
  # pytest sessions using the cluster hold $TB_STATE/users.lock shared (tests/e2e/conftest.py)
  if [ -z "$force" ] && [ -e "$TB_STATE/users.lock" ] && ! flock -n -x "$TB_STATE/users.lock" true; then
    die "a test session is using the testbed (it holds $TB_STATE/users.lock); down --force to take it down anyway"
  fi
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
  registry_stop
  for p in "$TB_STATE"/cm/*; do # client-side ControlMaster processes that used $TB_STATE/cm
    if [ -S "$p" ]; then ssh -o ControlPath="$p" -O exit dummy >/dev/null 2>&1 || true; fi
    rm -f "$p"
  done
  ip link del "$TB_ROOTIF" 2>/dev/null || true
  if [ -e "/run/netns/$TB_SW" ]; then ip netns del "$TB_SW"; fi
  rm -rf "$TB_STATE"/h[0-9]* "$TB_STATE/hosts"
  remove_cluster_file
  if [ -n "$purge" ]; then find "$TB_STATE" -mindepth 1 -maxdepth 1 ! -name lock ! -name users.lock -exec rm -rf {} +; fi
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
  printf '%-5s %-12s %-7s %-6s %-16s %-16s %-4s %-3s %-5s %-12s %-8s %s\n' HOST IP STATE LINK SSHD\ pid/RSS DOCKERD\ pid/RSS CTRS GPU IB SHAPE/DELAY IMAGE HOST-STATE
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
    printf '%-5s %-12s %-7s %-6s %-16s %-16s %-4s %-3s %-5s %-12s %-8s %s\n' "h$i" "$ip" "$st" "$ln" "$sp" "$dp" "$nc" "$gp" "$ib" "${sh:--}/$dl" "$im" "$(state_summary "$i")"
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

cmd_ib() { # the CX7/InfiniBand port configured (on) or absent (off): `state HOST cx7=configured|absent`
  local st=${2:?usage: ib HOST on|off}
  [ "$st" = on ] || [ "$st" = off ] || die "usage: ib HOST on|off"
  cmd_state "${1:?usage: ib HOST on|off}" "ib=$st"
  log "$1: fake InfiniBand $st"
}

# state HOST|all [FLAG...]: without flags, print the host's state; with flags, change it for real (see lib/state.sh)
cmd_state() {
  local h=${1:?usage: state HOST|all [prepared] [KEY=VALUE...]} i idx=()
  shift
  if [ "$h" = all ]; then mapfile -t idx < <(running_indices); else idx=("$(host_idx "$h")"); fi
  need_root # the state file holds the user's password (mode 600)
  if (($# == 0)); then
    for i in "${idx[@]}"; do
      ((${#idx[@]} == 1)) || echo "# h$i"
      state_show "$i"
    done
    return 0
  fi
  state_parse "$@" >/dev/null
  take_lock
  for i in "${idx[@]}"; do
    init_alive "$i" || die "h$i is not running"
    state_set "$i" "$@"
  done
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
