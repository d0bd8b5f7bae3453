#!/usr/bin/env bash
# setup_ssh.sh: the SSH mesh on one host, as the SSH user (no root). Idempotent: a second run adds nothing.
# Inputs (preamble):
#   ACTION      keygen: make the user's key pair if it has none (ed25519, no passphrase), report its public key
#               trust: authorize the AUTHORIZED keys and record the KNOWN host keys
#   AUTHORIZED  (array) public key lines ("type base64 comment") for ~/.ssh/authorized_keys
#   KNOWN       (array) "name type base64" lines for ~/.ssh/known_hosts: the keys the named hosts' own sshd serves,
#               read over verified connections; entries for the same name that differ are replaced
# Events: userkey LINE, changed TEXT, fail STEP CAUSE
# shellcheck disable=SC2154  # inputs come from the preamble

umask 077
ssh_dir=$HOME/.ssh
mkdir -p "$ssh_dir" || sr_fail ssh "cannot create $ssh_dir"
chmod 700 "$ssh_dir"

do_keygen() {
  local name out
  for name in id_ed25519 id_ecdsa id_rsa; do
    if [ -f "$ssh_dir/$name" ] && [ -f "$ssh_dir/$name.pub" ]; then
      sr_emit userkey "$(head -n1 "$ssh_dir/$name.pub")"
      return 0
    fi
  done
  sr_have ssh-keygen || sr_fail ssh-keygen "ssh-keygen is not installed (package openssh-client)"
  out=$(ssh-keygen -q -t ed25519 -N '' -C "$(id -un)@$(hostname) (sparkrun)" -f "$ssh_dir/id_ed25519" </dev/null 2>&1) ||
    sr_fail ssh-keygen "ssh-keygen failed: ${out##*$'\n'}"
  sr_emit userkey "$(head -n1 "$ssh_dir/id_ed25519.pub")"
  sr_emit changed "created $ssh_dir/id_ed25519"
}

authorize() {
  local ak=$ssh_dir/authorized_keys added=0 line key
  touch "$ak" && chmod 600 "$ak"
  for line in "${AUTHORIZED[@]}"; do
    read -r _type key _ <<<"$line"
    [ -n "${key:-}" ] || continue
    if ! awk -v k="$key" '{ for (i = 1; i <= NF; i++) if ($i == k) f = 1 } END { exit !f }' "$ak"; then
      printf '%s\n' "$line" >>"$ak"
      added=$((added + 1))
    fi
  done
  ((added == 0)) || sr_emit changed "authorized $added key(s) in $ak"
}

record_host_keys() {
  local kh=$ssh_dir/known_hosts changed=0 line name have wanted
  declare -A want=()
  touch "$kh" && chmod 600 "$kh"
  for line in "${KNOWN[@]}"; do
    name=${line%% *}
    want[$name]+="${line#* }"$'\n'
  done
  for name in "${!want[@]}"; do
    have=$(ssh-keygen -F "$name" -f "$kh" 2>/dev/null | grep -v '^#' | awk '{ print $2 " " $3 }' | sort -u)
    wanted=$(printf '%s' "${want[$name]}" | sort -u)
    [ "$have" = "$wanted" ] && continue
    if [ -n "$have" ]; then
      ssh-keygen -R "$name" -f "$kh" >/dev/null 2>&1
      rm -f "$kh.old"
    fi
    while read -r line; do
      [ -n "$line" ] && printf '%s %s\n' "$name" "$line" >>"$kh"
    done <<<"$wanted"
    changed=$((changed + 1))
  done
  ((changed == 0)) || sr_emit changed "recorded the host keys of $changed name(s) in $kh"
}

case $ACTION in
  keygen) do_keygen ;;
  trust)
    authorize
    record_host_keys
    ;;
  *) sr_fail ssh "unknown action '$ACTION'" ;;
esac
exit 0
