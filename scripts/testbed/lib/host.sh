# shellcheck shell=bash
# testbed lib: keys, a host's life (init, start, readiness, up/down), leftovers. Sourced by scripts/testbed.sh.
# shellcheck disable=SC2154  # settings come from scripts/testbed.sh

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
  # nothing to copy when neither the sources nor the installed copies changed since the last copy (paths, sizes,
  # mtimes: another checkout's testbed.sh may have installed its own copies meanwhile)
  if [ -f "$TB_STATE/bin/stamp" ] && [ "$(<"$TB_STATE/bin/stamp")" = "$(helpers_stamp)" ]; then return 0; fi
  for f in fake-nvidia-smi nvidia-container-runtime-hook nfq_delay.py; do
    install -m 755 "$TB_SRC/$f" "$TB_STATE/bin/$f.new"
    mv -f "$TB_STATE/bin/$f.new" "$TB_STATE/bin/$f"
  done
  # what each host's /usr/local/bin adds (copied per host by setup_fakebin): the stand-ins for the host's system
  # tools and their payloads (.testbed/), laid out once here, then swapped in whole
  local fb=$TB_STATE/bin/fakebin
  rm -rf "$fb.new"
  mkdir -p "$fb.new/.testbed"
  install -m 755 -t "$fb.new" "$TB_SRC/hostbin/"{systemctl,apt-get,dpkg-query,netplan,timedatectl}
  install -m 755 -t "$fb.new/.testbed" "$TB_SRC/hostbin/"{earlyoom,date}
  ln "$fb.new/apt-get" "$fb.new/apt"
  ln "$fb.new/dpkg-query" "$fb.new/dpkg"
  rm -rf "$fb" "$TB_STATE/bin/hostbin"
  mv "$fb.new" "$fb"
  mkdir -p "$TB_STATE/bin/testbed/lib"
  for f in "$TB_SRC"/lib/*.sh; do
    install -m 644 "$f" "$TB_STATE/bin/testbed/lib/${f##*/}.new"
    mv -f "$TB_STATE/bin/testbed/lib/${f##*/}.new" "$TB_STATE/bin/testbed/lib/${f##*/}"
  done
  install -m 755 "$TB_SELF" "$TB_STATE/bin/testbed.sh.new"
  mv -f "$TB_STATE/bin/testbed.sh.new" "$TB_STATE/bin/testbed.sh"
  helpers_stamp >"$TB_STATE/bin/stamp"
}
helpers_stamp() {
  stat -c '%n %s %Y' "$TB_SELF" "$TB_SRC"/lib/*.sh "$TB_SRC"/hostbin/* \
    "$TB_SRC"/{fake-nvidia-smi,nvidia-container-runtime-hook,nfq_delay.py} "$TB_STATE/bin/testbed.sh" \
    "$TB_STATE"/bin/testbed/lib/*.sh "$TB_STATE"/bin/fakebin/* 2>&1
}

# ---------------------------------------------------------------- the host itself
# Runs INSIDE: netns tb-h<i> (nsenter) + new private mount, UTS and PID namespaces (unshare), as PID 1 of the
# host; /proc is already the host's own (unshare --mount-proc).
hostinit() {
  local i=$1 H d n boot
  H=$(hdir "$i")
  export PATH=$SYS_PATH
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
  # its own /etc (users, groups, sudoers, netplan, ...) and /usr/local/bin: overlays whose changes stay in $H
  # first start: the disk holds the prepared state's files (template), so apply what differs from it; a restart
  # only does what a booting host does (mounts, enabled services, netplan): the disk keeps the rest
  boot=boot
  [ -e "$H/booted" ] || boot="boot $(state_changed "$i" | tr '\n' ' ')"
  [ -e "$H/etc.upper/passwd" ] || boot=all # no template: apply everything with the tools
  mount -t overlay tb-etc -o "lowerdir=/etc,upperdir=$H/etc.upper,workdir=$H/etc.work" /etc
  mount -t overlay tb-bin -o "lowerdir=$H/fakebin:/usr/local/bin,upperdir=$H/bin.upper,workdir=$H/bin.work" /usr/local/bin
  mount --bind "$H/run" /run # /var/run -> /run: docker.sock, sshd privsep dir
  mount --bind "$H/home" /root
  mount --bind "$H/homes" /home
  mount --bind "$H/tmp" /tmp
  mount --bind "$H/shm" /dev/shm
  mount --bind "$H/hosts" /etc/hosts
  mount --bind "$H/hostname" /etc/hostname
  cd /
  setsid env -i PATH="$SYS_PATH" HOME=/root dockerd --config-file "$H/daemon.json" \
    --data-root "$(ddir "$i")" --exec-root /run/docker --pidfile /run/dockerd.pid \
    -H unix:///run/docker.sock --bridge=none --iptables=false --ip6tables=false --ip-forward=false \
    --ip-masq=false --userland-proxy=false --cgroup-parent="/tb-h$i" --log-level=warn \
    </dev/null >>"$H/log/dockerd.log" 2>&1 &
  # while dockerd starts: the user, sudo, groups, HF cache, services, netplan (first start: all of the state)
  local t0=$EPOCHREALTIME
  # shellcheck disable=SC2086 # a word list
  state_inside "$i" $boot || echo "applying the host state failed" >&2
  touch "$H/booted"
  echo "host state ($boot) applied in $(((${EPOCHREALTIME/./} - ${t0/./}) / 1000)) ms" >&2
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
  cx7_outside "$i"
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

TB_HOST_VERSION=2 # a running host set up by another version of this file is restarted by `up`

host_up() { # I GPUS: bring host I up (retrying); 0 = up, 1 = failed (reason in $H/failure)
  local i=$1 gpus=$2 H attempt tries=${TB_RETRIES:-3} flags=() fresh=0 version
  H=$(hdir "$i")
  mkdir -p "$H/log"
  rm -f "$H/failure"
  mapfile -t flags < <(host_state_flags "$i")
  version=$(cat "$H/version" 2>/dev/null || true)
  if [ "$version" = "$TB_HOST_VERSION" ] && host_healthy "$i"; then
    write_host_files "$i"  # refresh known_hosts and /etc/hosts for newly added peers
    create_host_net "$i"   # and plug its cable back in (`link HOST down`)
    if ensure_image "$i" && host_apply_flags "$i" "${flags[@]}"; then
      log "h$i ($(ip_of "$i")) already up"
      return 0
    fi
  fi
  # a new host (or one of another version) starts from the prepared state + the flags: a fresh "disk"
  if [ ! -s "$H/state" ] || [ "$version" != "$TB_HOST_VERSION" ]; then fresh=1; fi
  for ((attempt = 1; attempt <= tries; attempt++)); do
    host_down "$i" quiet
    mkdir -p "$H/log"
    rm -f "$H/failure" "$H/version"
    echo "=== $(date '+%F %T') start attempt $attempt" | tee -a "$H/log/dockerd.log" >>"$H/log/init.log"
    if ((fresh)); then
      rm -rf "$H"/{etc.upper,etc.work,bin.upper,bin.work,homes,state,booted,ssh.stamp}
      state_parse "${flags[@]}" | state_merge "$i"
    fi
    if ((fresh)); then
      mkdir -p "$H"/{etc.work,bin.work}
      host_from_template "$i"
    fi
    write_host_files "$i"
    setup_fakebin "$i" "$gpus"
    if ((attempt > 1)); then rm -rf "$(ddir "$i")"; fi # in case the data root is what broke
    if host_start "$i" && wait_host_ready "$i"; then
      if reset_docker "$i" 2>>"$H/log/init.log" && ensure_image "$i" 2>>"$H/log/init.log"; then
        if ((fresh)) || host_apply_flags "$i" "${flags[@]}"; then
          echo "$TB_HOST_VERSION" >"$H/version"
          ((attempt == 1)) || log "h$i ($(ip_of "$i")) up after $attempt attempts"
          return 0
        fi
      else
        fail "$i" "could not load $TB_IMAGE: $(tail -n 1 "$H/log/init.log")" || true
      fi
    fi
    log "h$i: attempt $attempt/$tries failed: $(cat "$H/failure" 2>/dev/null)"
    sleep "$attempt"
  done
  host_down "$i" quiet
  return 1
}

host_apply_flags() { # I FLAG...: apply `up`'s state flags to a running host
  local i=$1
  shift
  (($#)) || return 0
  if ! (state_set "$i" "$@") >>"$(hdir "$i")/log/init.log" 2>&1; then
    fail "$i" "could not apply the state $*: $(tail -n 1 "$(hdir "$i")/log/init.log")"
    return 1
  fi
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
      *"__hostinit "* | *"nfq_delay.py"* | *"$TB_STATE/h"[0-9]* | *"--cgroup-parent=/tb-h"* | *"$TB_STATE/registry/"*) out+=("process $p: ${c:0:120}"); continue ;;
    esac
    if ((${#inos[@]})); then
      ino=$(stat -L -c %i "/proc/$p/ns/net" 2>/dev/null) || continue
      for l in "${inos[@]}"; do [ "$ino" = "$l" ] && out+=("process $p in a testbed netns: ${c:0:120}"); done
    fi
  done
  for l in "$TB_STATE"/h[0-9]* "$TB_STATE/registry"; do [ -e "$l" ] && out+=("state dir $l"); done
  if command -v iptables-save >/dev/null && iptables-save 2>/dev/null | grep -qE "$TB_NET\.|tb0|tbv[0-9]"; then
    out+=("iptables rules mentioning the testbed")
  fi
  ((${#out[@]} == 0)) && return 0
  printf '%s\n' "${out[@]}"
  return 1
}
