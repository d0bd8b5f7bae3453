# shellcheck shell=bash
# testbed lib: host states, i.e. how far a host is from a prepared DGX Spark: the non-root user and its sudo rights,
# the docker group, the SSH mesh between hosts, the Hugging Face cache, earlyoom, the CX7 port, the clock.
# Sourced by scripts/testbed.sh. The state of host i lives in $TB_STATE/h<i>/state (key=value lines); `state`
# changes it on a running host, TB_HOST_STATE[_<i>] at `up` sets it for the hosts `up` touches.
# shellcheck disable=SC2154  # settings come from scripts/testbed.sh

TB_USER=spark
STATE_KEYS=(sudo password docker-group mesh-root mesh-user hf-cache cache-size cache-fill earlyoom cx7 clock)

declare -A STATE_DEFAULTS=([sudo]=nopasswd [password]='' [docker-group]=yes [mesh-root]=yes [mesh-user]=yes
  [hf-cache]=ok [cache-size]=off [cache-fill]=0 [earlyoom]=yes [cx7]=absent [clock]=0)
state_default() { echo "${STATE_DEFAULTS[$1]}"; }

# The user's uid = gid: the first id >= 1000 that the control machine's /etc/passwd and /etc/group leave free (the
# hosts' /etc starts as the control machine's); once the user exists (inside a host), its own id. Same everywhere.
USER_ID=
user_id() {
  if [ -z "$USER_ID" ]; then
    USER_ID=$(id -u "$TB_USER" 2>/dev/null) ||
      USER_ID=$(awk -F: 'FNR == NR { used[$3] = 1; next } { used[$3] = 1 } END { for (n = 1000; used[n]; n++); print n }' \
        /etc/passwd /etc/group)
  fi
  echo "$USER_ID"
}
user_home() { echo "$(hdir "$1")/homes/$TB_USER"; } # seen as /home/spark inside host i

state_file() { echo "$(hdir "$1")/state"; }
declare -A STATE_VALUES=() # the state file of host $STATE_OF, read once (no fork per lookup)
STATE_OF=
state_get() { # I KEY: the value in the host's state file, else the prepared default
  local line
  if [ "$STATE_OF" != "$1" ]; then
    STATE_VALUES=()
    if [ -f "$(hdir "$1")/state" ]; then
      while IFS= read -r line; do STATE_VALUES[${line%%=*}]=${line#*=}; done <"$(hdir "$1")/state"
    fi
    STATE_OF=$1
  fi
  if [[ -v STATE_VALUES[$2] ]]; then echo "${STATE_VALUES[$2]}"; else state_default "$2"; fi
}
state_show() {
  local k
  for k in "${STATE_KEYS[@]}"; do echo "$k=$(state_get "$1" "$k")"; done
}

state_summary() { # I: the keys that differ from the prepared state (password hidden), or "prepared"
  local k v out=()
  for k in "${STATE_KEYS[@]}"; do
    v=$(state_get "$1" "$k")
    [ "$v" = "$(state_default "$k")" ] && continue
    [ "$k" = password ] && v='***'
    out+=("$k=$v")
  done
  if ((${#out[@]})); then (IFS=,; echo "${out[*]}"); else echo prepared; fi
}

size_ok() { [[ $1 =~ ^[0-9]+[KkMmGg]?$ ]]; }
state_check() { # KEY VALUE: dies on a bad value
  local k=$1 v=$2 ok=0
  case $k in
    sudo) [[ $v =~ ^(nopasswd|password|none)$ ]] && ok=1 ;;
    password) [[ $v != *$'\n'* ]] && ok=1 ;;
    docker-group | mesh-root | mesh-user | earlyoom) [[ $v =~ ^(yes|no)$ ]] && ok=1 ;;
    hf-cache) [[ $v =~ ^(ok|root-owned)$ ]] && ok=1 ;;
    cache-size) { [ "$v" = off ] || size_ok "$v"; } && ok=1 ;;
    cache-fill) size_ok "$v" && ok=1 ;;
    cx7) [[ $v =~ ^(absent|configured|unconfigured)$ ]] && ok=1 ;;
    clock) [[ $v =~ ^[+-]?[0-9]+$ ]] && ok=1 ;;
    *) die "unknown state '$k' (${STATE_KEYS[*]}, or mesh, ib, prepared)" ;;
  esac
  ((ok)) || die "bad value for state $k: '$v'"
}

state_parse() { # FLAG...: normalized key=value lines (prepared, mesh=, ib= expanded), checked
  local f k v
  for f in "$@"; do
    case $f in
      prepared) for k in "${STATE_KEYS[@]}"; do echo "$k=$(state_default "$k")"; done; continue ;;
      mesh=*)
        state_check mesh-root "${f#*=}"
        printf 'mesh-root=%s\nmesh-user=%s\n' "${f#*=}" "${f#*=}"
        continue ;;
      ib=on) f=cx7=configured ;;
      ib=off) f=cx7=absent ;;
      *=*) ;;
      *) die "bad state flag '$f' (KEY=VALUE or prepared)" ;;
    esac
    k=${f%%=*}
    v=${f#*=}
    state_check "$k" "$v"
    echo "$k=$v"
  done
}

state_merge() { # I < key=value lines: update the state file (later lines win)
  local f kv k
  f=$(state_file "$1")
  declare -A cur=()
  for k in "${STATE_KEYS[@]}"; do cur[$k]=$(state_get "$1" "$k"); done
  while IFS= read -r kv; do
    [ -n "$kv" ] && cur[${kv%%=*}]=${kv#*=}
  done
  for k in "${STATE_KEYS[@]}"; do printf '%s=%s\n' "$k" "${cur[$k]}"; done >"$f.tmp"
  chmod 600 "$f.tmp"
  mv "$f.tmp" "$f"
  STATE_OF=
}

# ---------------------------------------------------------------- outside the host (root namespace)
ensure_user_keys() { # I: the persistent key pairs of root and the user on host i (the SSH mesh)
  local u f
  for u in root "$TB_USER"; do
    f=$TB_STATE/keys/$u-h$1_ed25519
    [ -f "$f" ] || ssh-keygen -q -t ed25519 -N '' -C "$u@tb-h$1" -f "$f"
  done
}

# write_user_ssh I USER DIR UID MESH: ~/.ssh of USER on host i. The control machine's key is always authorized;
# in the mesh, USER has its own key pair, every host's USER key is authorized and known_hosts knows every host.
# (Files are read and written with bash builtins: this runs for every host at every `up`.)
write_user_ssh() {
  local i=$1 u=$2 d=$3/.ssh uid=$4 mesh=$5 j k auth
  [ -d "$d" ] || mkdir -p "$d"
  read -r auth <"$TB_STATE/keys/id_ed25519.pub"
  auth+=$'\n'
  (
    umask 077
    if [ "$mesh" = yes ]; then
      for j in "${KNOWN[@]}"; do
        if [ -f "$TB_STATE/keys/$u-h${j}_ed25519.pub" ]; then read -r k <"$TB_STATE/keys/$u-h${j}_ed25519.pub"; auth+=$k$'\n'; fi
      done
      copy_text "$TB_STATE/keys/$u-h${i}_ed25519" "$d/id_ed25519"
      copy_text "$TB_STATE/keys/$u-h${i}_ed25519.pub" "$d/id_ed25519.pub"
      copy_text "$TB_STATE/known_hosts" "$d/known_hosts"
    else
      rm -f "$d/id_ed25519" "$d/id_ed25519.pub" "$d/known_hosts"
    fi
    printf '%s' "$auth" >"$d/authorized_keys.tmp"
  )
  mv -f "$d/authorized_keys.tmp" "$d/authorized_keys"
  if ((uid != 0)); then chown -R "$uid:$uid" "$d"; fi
}
copy_text() { # SRC DST with builtins (no fork)
  local text
  IFS= read -r -d '' text <"$1" || true
  printf '%s' "$text" >"$2"
}

write_user_files() { # I: homes and ~/.ssh of root and the user, as the state says (skipped when nothing changed)
  local i=$1 H uh uid stamp KNOWN=()
  H=$(hdir "$i")
  uid=$(user_id)
  uh=$(user_home "$i")
  mapfile -t KNOWN < <(known_indices)
  stamp="${KNOWN[*]} $(state_get "$i" mesh-root) $(state_get "$i" mesh-user)"
  if [ -d "$uh" ] && [ -f "$H/ssh.stamp" ] && [ "$(<"$H/ssh.stamp")" = "$stamp" ]; then return 0; fi
  if [ ! -d "$uh" ]; then cp -a "$TB_STATE/cache/host-template/homes" "$H/"; fi
  write_user_ssh "$i" root "$H/home" 0 "$(state_get "$i" mesh-root)"
  write_user_ssh "$i" "$TB_USER" "$uh" "$uid" "$(state_get "$i" mesh-user)"
  echo "$stamp" >"$H/ssh.stamp"
}

cx7_outside() { # I [live]: the CX7 port (IB tree, netdev) as the state says; live = mount/unmount in the running host
  local i=$1 live=${2:-} H mode p
  H=$(hdir "$i")
  mode=$(state_get "$i" cx7)
  if [ "$mode" = absent ] && [ -z "$live" ]; then # a host being started: its new netns has no CX7 netdev
    rm -rf "$H/ib" "$H/ib.on"
    return 0
  fi
  if [ "$mode" = absent ]; then
    if [ -n "$live" ] && p=$(host_pid1 "$i"); then
      nsenter -t "$p" --mount -- sh -c 'if mountpoint -q /sys/class/infiniband; then umount /sys/class/infiniband; fi
        rmdir /sys/class/infiniband 2>/dev/null || true'
    fi
    ib_netdev "$i" absent
    rm -rf "$H/ib" "$H/ib.on"
    return 0
  fi
  write_ib_tree "$i" "$mode"
  touch "$H/ib.on"
  ib_netdev "$i" "$mode"
  if [ -n "$live" ] && p=$(host_pid1 "$i"); then
    # shellcheck disable=SC2016 # expanded by the inner sh
    nsenter -t "$p" --mount -- sh -c 'mountpoint -q /sys/class/infiniband && exit 0
      mkdir -p /sys/class/infiniband && mount --bind "$1" /sys/class/infiniband' sh "$H/ib"
  fi
}

# The prepared state's changes to a new host's /etc and /usr/local/bin (the user with its groups, sudoers, netplan
# dir, earlyoom installed and enabled), made with the real tools (useradd --prefix ...) once per change of this
# machine's user database, then copied into each new host's overlay upper dirs: cheaper than running the tools in
# every host at every start. Anything else in a host's state is applied with the tools in the host when it boots.
host_template() {
  local t=$TB_STATE/cache/host-template key uid f
  key=$(stat -c '%n %s %Y' /etc/passwd /etc/group /etc/shadow /etc/gshadow "$TB_SRC/hostbin/apt-get" \
    "$TB_SRC/hostbin/earlyoom" "${BASH_SOURCE[0]}" 2>&1)
  if [ -f "$t/key" ] && [ "$(<"$t/key")" = "$key" ]; then return 0; fi
  uid=$(user_id)
  rm -rf "$t"
  mkdir -p "$t/etc/sudoers.d" "$t/etc/netplan" "$t/etc/default"
  for f in passwd group shadow gshadow subuid subgid login.defs default/useradd; do
    if [ -e "/etc/$f" ]; then cp -a "/etc/$f" "$t/etc/$f"; fi
  done
  groupadd -P "$t" -g "$uid" "$TB_USER"
  # -l: no lastlog/faillog entry; '*': no password, but not locked (sshd without PAM refuses locked accounts)
  useradd -P "$t" -l -M -u "$uid" -g "$uid" -d "/home/$TB_USER" -s /bin/bash -p '*' "$TB_USER"
  usermod -P "$t" -a -G docker,sudo "$TB_USER"
  rm -rf "${t:?}/etc/login.defs" "${t:?}/etc/default/useradd" "${t:?}/etc/"*- "${t:?}/var"
  printf 'Defaults lecture=never\n' >"$t/etc/sudoers.d/testbed" # sudo would write /var/lib/sudo/lectured (shared)
  printf '%s ALL=(ALL:ALL) NOPASSWD: ALL\n' "$TB_USER" >"$t/etc/sudoers.d/$TB_USER-nopasswd"
  chmod 440 "$t/etc/sudoers.d/"*
  mkdir -p "$t/bin"
  PAYLOAD=$TB_SRC/hostbin "$TB_SRC/hostbin/apt-get" __layout "$t" earlyoom
  mv "$t/usr/local/bin/earlyoom" "$t/bin/earlyoom"
  rm -rf "${t:?}/usr"
  mv "$t/etc" "$t/etc.upper"
  mv "$t/bin" "$t/bin.upper"
  # the user's home (mesh files are added per host)
  f=$t/homes/$TB_USER
  mkdir -p "$f/.cache/huggingface" "$f/.ssh"
  cp /etc/skel/.bashrc /etc/skel/.profile "$f/" 2>/dev/null || true
  chmod 750 "$f" "$f/.cache"
  chmod 700 "$f/.ssh"
  chown -R "$uid:$uid" "$f"
  echo "$key" >"$t/key"
}

host_from_template() { # I: a new host's disk: the prepared state (one cp)
  cp -a "$TB_STATE/cache/host-template/"{etc.upper,bin.upper,homes} "$(hdir "$1")/"
}

state_changed() { # I: the keys of host i's state that differ from the prepared state
  local k
  state_get "$1" sudo >/dev/null # loads STATE_VALUES (no subshell per key below)
  for k in "${STATE_KEYS[@]}"; do
    if [[ -v STATE_VALUES[$k] ]] && [ "${STATE_VALUES[$k]}" != "${STATE_DEFAULTS[$k]}" ]; then echo "$k"; fi
  done
}

host_state_flags() { # I: the flags `up` applies to host i (TB_HOST_STATE, TB_HOST_STATE_<i>, TB_FAKE_IB=1)
  local v="TB_HOST_STATE_$1"
  local f
  # shellcheck disable=SC2086 # flags are a word list
  for f in ${TB_HOST_STATE:-} ${!v:-}; do echo "$f"; done
  if [ "${TB_FAKE_IB:-0}" = 1 ]; then echo cx7=configured; fi
}

in_host() { # I CMD...: run CMD inside host i's namespaces and cgroup (what it starts dies with the host)
  local i=$1 p
  shift
  p=$(exec_target "$i")
  (
    echo "$BASHPID" >"$CG_PIDS/tb-h$i/init/cgroup.procs"
    exec nsenter -t "$p" --mount --uts --net --pid --wd=/ -- \
      env -i PATH="$SYS_PATH" HOME=/root LANG=C.UTF-8 TB_HOST="tb-h$i" TB_STATE="$TB_STATE" "$@"
  ) 9>&-
}

# state_set I FLAG...: change a running host's state for real
state_set() {
  local i=$1 lines keys=() kv
  shift
  lines=$(state_parse "$@")
  [ -n "$lines" ] || return 0
  state_merge "$i" <<<"$lines"
  while IFS= read -r kv; do keys+=("${kv%%=*}"); done <<<"$lines"
  case " ${keys[*]} " in *" mesh-"*) write_user_files "$i" ;; esac
  case " ${keys[*]} " in *" cx7 "*) cx7_outside "$i" live ;; esac
  in_host "$i" "$TB_STATE/bin/testbed.sh" __state_inside "$i" "${keys[@]}" ||
    die "h$i: could not apply state ${keys[*]} (see above)"
}

# ---------------------------------------------------------------- inside the host (run by hostinit / `state`)
in_group() { [[ " $(id -nG "$TB_USER" 2>/dev/null) " == *" $1 "* ]]; }
set_group() { # GROUP yes|no: the user's membership, with the real tools
  if [ "$2" = yes ]; then
    in_group "$1" || gpasswd -a "$TB_USER" "$1" >/dev/null
  else
    ! in_group "$1" || gpasswd -d "$TB_USER" "$1" >/dev/null
  fi
}

ensure_user() { # the user, created with the real tools in this host's /etc (a per-host overlay)
  local uid
  if USER_ID=$(id -u "$TB_USER" 2>/dev/null); then return 0; fi
  USER_ID=
  uid=$(user_id)
  groupadd -g "$uid" "$TB_USER"
  # -l: no lastlog/faillog entry (/var is the control machine's); '*': no password, but not locked (sshd without
  # PAM refuses locked accounts)
  useradd -l -M -u "$uid" -g "$uid" -d "/home/$TB_USER" -s /bin/bash -p '*' "$TB_USER"
  printf 'Defaults lecture=never\n' >/etc/sudoers.d/testbed # sudo would write /var/lib/sudo/lectured (shared)
  chmod 440 /etc/sudoers.d/testbed
}

apply_sudo() {
  local mode pw f=/etc/sudoers.d/$TB_USER-nopasswd
  mode=$(state_get "$1" sudo)
  pw=$(state_get "$1" password)
  if [ -z "$pw" ] && [ "$mode" = password ]; then pw=$TB_USER; fi
  if [ -n "$pw" ]; then
    printf '%s:%s\n' "$TB_USER" "$pw" | chpasswd
  elif [ "$(getent shadow "$TB_USER" | cut -d: -f2)" != '*' ]; then
    usermod -p '*' "$TB_USER"
  fi
  if [ "$mode" = none ]; then set_group sudo no; else set_group sudo yes; fi
  if [ "$mode" = nopasswd ]; then
    printf '%s ALL=(ALL:ALL) NOPASSWD: ALL\n' "$TB_USER" >"$f.tmp"
    chmod 440 "$f.tmp"
    mv -f "$f.tmp" "$f"
  else
    rm -f "$f"
  fi
}

to_bytes() { numfmt --from=iec "${1^^}"; }
apply_cache() { # the user's HF cache: tmpfs size, filler, owner
  local i=$1 c=/home/$TB_USER/.cache/huggingface size fill owner uid
  uid=$(user_id)
  size=$(state_get "$i" cache-size)
  fill=$(state_get "$i" cache-fill)
  mkdir -p "$c"
  if [ "$size" = off ]; then
    if mountpoint -q "$c"; then umount "$c" 2>/dev/null || umount -l "$c"; fi
  elif mountpoint -q "$c"; then
    mount -o "remount,size=$size" "$c"
  else
    mount -t tmpfs -o "size=$size,mode=755,uid=$uid,gid=$uid,nosuid,nodev" tb-hf-cache "$c"
  fi
  rm -f "$c/.testbed-fill"
  if [ "$fill" != 0 ]; then
    fallocate -l "$(to_bytes "$fill")" "$c/.testbed-fill" || { rm -f "$c/.testbed-fill"; return 1; }
  fi
  owner=$TB_USER
  [ "$(state_get "$i" hf-cache)" = root-owned ] && owner=root
  chown -R "$owner:$owner" "$c"
}

apply_earlyoom() {
  if [ "$(state_get "$1" earlyoom)" = yes ]; then
    if [ -x /usr/local/bin/earlyoom ]; then
      systemctl enable --now earlyoom >/dev/null
    else
      apt-get install -y earlyoom >/dev/null # enables and starts it, as Debian's package does
    fi
  else
    apt-get purge -y earlyoom >/dev/null
  fi
}

apply_clock() {
  local off
  off=$(state_get "$1" clock)
  off=$((10#${off#+}))
  if ((off == 0)); then
    rm -f /etc/testbed-clock-offset /usr/local/bin/date
  else
    echo "$off" >/etc/testbed-clock-offset
    install -m 755 /usr/local/bin/.testbed/date /usr/local/bin/date
  fi
}

# state_inside I KEY...: apply KEYs of host i's state file in this host; KEY "all" = everything (first boot),
# "boot" = what a restarted host redoes itself (mounts, enabled services, netplan)
state_inside() {
  local i=$1 keys
  shift
  keys=" $* "
  if [[ $keys == *" all "* ]]; then keys=" ${STATE_KEYS[*]} "; fi
  state_get "$i" sudo >/dev/null # read the state file once, here
  ensure_user
  user_id >/dev/null
  [ -d /etc/netplan ] || mkdir -p /etc/netplan # the host's network config tool (stand-in in /usr/local/bin)
  if [[ $keys == *" boot "* ]]; then
    # a restart re-mounts the cache tmpfs (ownership and the filler are on the disk or come with the mount)
    if [ "$(state_get "$i" cache-size)" != off ] && ! [[ $keys == *" cache-"* || $keys == *" hf-cache "* ]]; then
      apply_cache "$i"
    fi
    systemctl __boot
    if compgen -G '/etc/netplan/*.yaml' >/dev/null; then netplan apply; fi
  fi
  if [[ $keys == *" sudo "* || $keys == *" password "* ]]; then apply_sudo "$i"; fi
  if [[ $keys == *" docker-group "* ]]; then set_group docker "$(state_get "$i" docker-group)"; fi
  if [[ $keys == *" hf-cache "* || $keys == *" cache-size "* || $keys == *" cache-fill "* ]]; then apply_cache "$i"; fi
  if [[ $keys == *" earlyoom "* ]]; then apply_earlyoom "$i"; fi
  if [[ $keys == *" clock "* ]]; then apply_clock "$i"; fi
  if [[ $keys == *" cx7 "* ]]; then rm -f /etc/netplan/*.yaml; fi # a new CX7 state starts without saved config
  return 0
}
