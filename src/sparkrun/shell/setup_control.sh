#!/usr/bin/env bash
# setup_control.sh: what `sparkrun setup` does on the control machine itself (run with local bash, not over SSH).
# Inputs (preamble):
#   ACTION       scan: the SSH settings OpenSSH would use for TARGET (`ssh -G`) and the keys its sshd presents now,
#                     scanned over the network (so not trusted until the user confirms them)
#                record: append LINES to KNOWN_HOSTS_FILE (the user confirmed them)
#                reconnect: close sparkrun's shared connection to TARGET, so the next one is a new login (and gets
#                     the groups a setup step just gave the user)
#   SSH_ARGV     (array) ssh and the options sparkrun uses for TARGET (reconnect: with its ControlPath)
#   TARGET       the host as the cluster names it
#   KNOWN_HOSTS_FILE, LINES (array of "name type base64"): record
# Events: known_hosts_file PATH, name NAME, scanned TYPE BASE64, changed TEXT, fail STEP CAUSE
# shellcheck disable=SC2154  # inputs come from the preamble

home_of_user() { getent passwd "$(id -un)" | cut -d: -f6; }

do_scan() {
  local conf host port alias file name keys
  conf=$("${SSH_ARGV[@]}" -G "$TARGET" 2>&1) || sr_fail ssh "ssh -G $TARGET failed: ${conf##*$'\n'}"
  host=$(awk '$1 == "hostname" { print $2; exit }' <<<"$conf")
  port=$(awk '$1 == "port" { print $2; exit }' <<<"$conf")
  alias=$(awk '$1 == "hostkeyalias" { print $2; exit }' <<<"$conf")
  file=$(awk '$1 == "userknownhostsfile" { print $2; exit }' <<<"$conf")
  # OpenSSH expands ~ with the passwd entry's home, not $HOME
  [[ $file == \~/* ]] && file=$(home_of_user)/${file:2}
  name=${alias:-$host}
  if [ -z "$alias" ] && [ "${port:-22}" != 22 ]; then name="[$host]:$port"; fi
  sr_emit known_hosts_file "$file"
  sr_emit name "$name"
  sr_have ssh-keyscan || sr_fail ssh-keyscan "ssh-keyscan is not installed on this machine"
  keys=$(timeout 20 ssh-keyscan -T 5 -p "${port:-22}" "$host" 2>/dev/null | grep -v '^#')
  [ -n "$keys" ] || sr_fail ssh-keyscan "no SSH host key could be read from $host:${port:-22}"
  while read -r _name type key; do
    [ -n "${key:-}" ] && sr_emit scanned "$type $key"
  done <<<"$keys"
}

do_record() {
  local line added=0
  mkdir -p "$(dirname "$KNOWN_HOSTS_FILE")" || sr_fail record "cannot create the directory of $KNOWN_HOSTS_FILE"
  touch "$KNOWN_HOSTS_FILE" || sr_fail record "cannot write $KNOWN_HOSTS_FILE"
  for line in "${LINES[@]}"; do
    if ! grep -qxF -- "$line" "$KNOWN_HOSTS_FILE"; then
      printf '%s\n' "$line" >>"$KNOWN_HOSTS_FILE" || sr_fail record "cannot write $KNOWN_HOSTS_FILE"
      added=$((added + 1))
    fi
  done
  if ((added)); then
    sr_emit changed "recorded $added host key(s) in $KNOWN_HOSTS_FILE"
  else
    sr_emit unchanged "$KNOWN_HOSTS_FILE already has these host keys"
  fi
}

do_reconnect() {
  "${SSH_ARGV[@]}" -O exit "$TARGET" >/dev/null 2>&1 || true
  sr_emit changed "closed the shared SSH connection to $TARGET"
}

case $ACTION in
  scan) do_scan ;;
  record) do_record ;;
  reconnect) do_reconnect ;;
  *) sr_fail setup "unknown action '$ACTION'" ;;
esac
exit 0
