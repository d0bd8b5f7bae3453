#!/usr/bin/env bash
# setup_host.sh: one change `sparkrun setup` makes on a host that needs root. The commands run as root directly (the
# SSH user is root), through `sudo -n`, or through `sudo -S` with the password read from this script's stdin: it is
# kept in a shell variable (never exported, never an argument) and piped by the printf builtin to each sudo, whose
# command then gets /dev/null as its stdin, so a sudo that asks for no password cannot pass it on.
# Inputs (preamble):
#   ACTION        docker-group | fix-permissions | earlyoom | clear-cache | cx7
#   SUDO          root | nopasswd | password
#   TARGET_USER   docker-group: the user to add to group docker
#   CACHE_DIR     fix-permissions: the Hugging Face cache (a leading ~/ is this user's home), made this user's
#   EARLYOOM_ARGS earlyoom: EARLYOOM_ARGS for /etc/default/earlyoom ("" = leave the file alone)
#   NETPLAN_FILE, NETPLAN_YAML, CX7_IFACES (array), CX7_ADDRS (array, address/prefix per interface), CX7_MTU: cx7
# Events: changed TEXT (one per change made), unchanged TEXT, fail STEP CAUSE
# shellcheck disable=SC2154  # inputs come from the preamble

sr_password=""
if [ "$SUDO" = password ]; then
  IFS= read -r sr_password || true
fi

# as_root CMD...: CMD as root, its stdin /dev/null.
as_root() {
  case $SUDO in
    root) "$@" </dev/null ;;
    nopasswd) sudo -n -- "$@" </dev/null ;;
    password) printf '%s\n' "$sr_password" | sudo -S -k -p '' -- sh -c 'exec "$@" </dev/null' sparkrun "$@" ;;
    *) sr_fail sudo "unknown sudo mode '$SUDO'" ;;
  esac
}

check_sudo() {
  local err
  [ "$SUDO" = root ] && return 0
  err=$(as_root true 2>&1 >/dev/null) && return 0
  case $err in
    *"not in the sudoers"* | *"may not run sudo"* | *"not allowed to execute"*)
      sr_fail sudo "$(id -un) may not use sudo on this host" ;;
    *"incorrect password"* | *"Sorry, try again"* | *"no password was provided"*)
      sr_fail sudo "the sudo password was refused" ;;
    *"password is required"*)
      sr_fail sudo "sudo needs a password for $(id -un)" ;;
    *) sr_fail sudo "sudo failed: ${err##*$'\n'}" ;;
  esac
}

home_path() { # PATH with a leading ~/ made this user's home
  case $1 in
    \~) printf '%s' "$HOME" ;;
    \~/*) printf '%s/%s' "$HOME" "${1:2}" ;;
    *) printf '%s' "$1" ;;
  esac
}

do_docker_group() {
  local out
  if ! getent group docker >/dev/null; then
    out=$(as_root groupadd docker 2>&1) || sr_fail docker-group "groupadd docker failed: ${out##*$'\n'}"
  fi
  if id -nG "$TARGET_USER" 2>/dev/null | tr ' ' '\n' | grep -qx docker; then
    sr_emit unchanged "$TARGET_USER is already in group docker"
    return 0
  fi
  out=$(as_root usermod -aG docker "$TARGET_USER" 2>&1) ||
    sr_fail docker-group "usermod -aG docker $TARGET_USER failed: ${out##*$'\n'}"
  id -nG "$TARGET_USER" | tr ' ' '\n' | grep -qx docker || sr_fail docker-group "$TARGET_USER is still not in group docker"
  sr_emit changed "added $TARGET_USER to group docker (new logins have it)"
}

do_permissions() {
  local dir uid gid out count parent
  dir=$(home_path "$CACHE_DIR")
  uid=$(id -u)
  gid=$(id -g)
  if [ ! -d "$dir" ] && ! mkdir -p "$dir" 2>/dev/null; then
    out=$(as_root mkdir -p "$dir" 2>&1) || sr_fail fix-permissions "mkdir $dir failed: ${out##*$'\n'}"
  fi
  count=$(find "$dir" ! -user "$uid" 2>/dev/null | wc -l)
  out=$(as_root chown -R "$uid:$gid" "$dir" 2>&1) || sr_fail fix-permissions "chown -R $uid:$gid $dir failed: ${out##*$'\n'}"
  # parents created as root under the home (e.g. ~/.cache) belong to the user too
  parent=$(dirname "$dir")
  while [[ $parent == "$HOME"/* ]]; do
    if [ ! -O "$parent" ]; then
      out=$(as_root chown "$uid:$gid" "$parent" 2>&1) || sr_fail fix-permissions "chown $parent failed: ${out##*$'\n'}"
    fi
    parent=$(dirname "$parent")
  done
  if [ -n "$(find "$dir" ! -user "$uid" -print -quit 2>/dev/null)" ] || [ ! -w "$dir" ]; then
    sr_fail fix-permissions "$dir is still not $(id -un)'s"
  fi
  sr_emit changed "$(id -un) owns $dir ($count entr$([ "$count" = 1 ] && echo y || echo ies) changed)"
}

earlyoom_args_now() {
  local args
  args=$(sed -n 's/^EARLYOOM_ARGS=//p' /etc/default/earlyoom 2>/dev/null | tail -n1)
  args=${args#\"}
  printf '%s' "${args%\"}"
}

do_earlyoom() {
  local out tmp restart=0
  if ! sr_have earlyoom; then
    sr_have apt-get || sr_fail earlyoom "no apt-get on this host: install earlyoom with its package manager"
    out=$(as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q earlyoom 2>&1) ||
      sr_fail earlyoom "apt-get install earlyoom failed: ${out##*$'\n'}"
    sr_emit changed "installed earlyoom"
  fi
  if [ -n "$EARLYOOM_ARGS" ] && [ "$(earlyoom_args_now)" != "$EARLYOOM_ARGS" ]; then
    tmp=$(mktemp)
    { grep -v '^EARLYOOM_ARGS=' /etc/default/earlyoom 2>/dev/null; printf 'EARLYOOM_ARGS="%s"\n' "$EARLYOOM_ARGS"; } >"$tmp"
    out=$(as_root install -m 644 "$tmp" /etc/default/earlyoom 2>&1)
    local rc=$?
    rm -f "$tmp"
    ((rc == 0)) || sr_fail earlyoom "could not write /etc/default/earlyoom: ${out##*$'\n'}"
    sr_emit changed "EARLYOOM_ARGS=\"$EARLYOOM_ARGS\" in /etc/default/earlyoom"
    restart=1
  fi
  out=$(as_root systemctl enable --now earlyoom 2>&1) || sr_fail earlyoom "systemctl enable --now earlyoom failed: ${out##*$'\n'}"
  if ((restart)); then
    out=$(as_root systemctl restart earlyoom 2>&1) || sr_fail earlyoom "systemctl restart earlyoom failed: ${out##*$'\n'}"
  fi
  [ "$(systemctl is-active earlyoom 2>/dev/null)" = active ] || sr_fail earlyoom "earlyoom is installed but not running"
  sr_emit changed "earlyoom is enabled and running"
}

do_clear_cache() {
  local before after
  before=$(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo)
  sync
  out=$(as_root sh -c 'echo 3 > /proc/sys/vm/drop_caches' 2>&1) ||
    sr_fail clear-cache "could not write /proc/sys/vm/drop_caches: ${out##*$'\n'}"
  after=$(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo)
  sr_emit freed_mib "$((after - before))"
  sr_emit changed "dropped the page cache: available memory ${before} -> ${after} MiB"
}

cx7_with_netplan() {
  local tmp out rc
  tmp=$(mktemp)
  printf '%s' "$NETPLAN_YAML" >"$tmp"
  out=$(as_root install -D -m 600 "$tmp" "$NETPLAN_FILE" 2>&1)
  rc=$?
  rm -f "$tmp"
  ((rc == 0)) || sr_fail cx7 "could not write $NETPLAN_FILE: ${out##*$'\n'}"
  out=$(as_root netplan apply 2>&1) || sr_fail cx7 "netplan apply failed: ${out##*$'\n'}"
  sr_emit changed "wrote $NETPLAN_FILE and applied it (netplan)"
}

cx7_with_nmcli() {
  local i iface con out
  for i in "${!CX7_IFACES[@]}"; do
    iface=${CX7_IFACES[$i]}
    con=sparkrun-$iface
    as_root nmcli connection delete "$con" >/dev/null 2>&1
    out=$(as_root nmcli connection add type ethernet ifname "$iface" con-name "$con" ipv4.method manual \
      ipv4.addresses "${CX7_ADDRS[$i]}" ipv6.method ignore 802-3-ethernet.mtu "$CX7_MTU" 2>&1) ||
      sr_fail cx7 "nmcli connection add $con failed: ${out##*$'\n'}"
    out=$(as_root nmcli connection up "$con" 2>&1) || sr_fail cx7 "nmcli connection up $con failed: ${out##*$'\n'}"
    sr_emit changed "$iface: NetworkManager connection $con"
  done
}

do_cx7() {
  local i iface addr mtu
  if sr_have netplan; then
    cx7_with_netplan
  elif sr_have nmcli; then
    cx7_with_nmcli
  else
    sr_fail cx7 "neither netplan nor NetworkManager (nmcli) is here to keep the addresses across reboots"
  fi
  for i in "${!CX7_IFACES[@]}"; do
    iface=${CX7_IFACES[$i]}
    addr=${CX7_ADDRS[$i]}
    ip -4 -o addr show dev "$iface" 2>/dev/null | grep -qF " $addr " || sr_fail cx7 "$iface does not have $addr"
    mtu=$(cat "/sys/class/net/$iface/mtu" 2>/dev/null)
    [ "$mtu" = "$CX7_MTU" ] || sr_fail cx7 "$iface has MTU ${mtu:-?}, not $CX7_MTU"
    sr_emit changed "$iface: $addr, MTU $mtu"
  done
}

check_sudo
case $ACTION in
  docker-group) do_docker_group ;;
  fix-permissions) do_permissions ;;
  earlyoom) do_earlyoom ;;
  clear-cache) do_clear_cache ;;
  cx7) do_cx7 ;;
  *) sr_fail setup "unknown action '$ACTION'" ;;
esac
exit 0
