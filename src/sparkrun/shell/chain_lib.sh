#!/usr/bin/env bash
# chain_lib.sh: what the two ends of a copy chain share (image_send.sh, model_send.sh, image_recv.sh, model_recv.sh).
# Functions only; `render_script` puts it after lib.sh for those scripts (see CHAIN_SCRIPTS in shell/__init__.py).
# Inputs (preamble of the script that uses it): NAME, NEXT_SSH (array: the command that reaches the next hop; empty:
#   none), NEXT_COMMAND, NEXT_NAME
# Events: hop-start NAME PGID, hop-next NAME NEXT STATUS CAUSE (the next hop's connection ended badly)
# shellcheck disable=SC2154  # inputs come from the preamble

# sr_hop_start: announce this hop with its process group (sync_stop.sh ends it there if its sender goes away).
sr_hop_start() {
  local pgid
  read -r pgid < <(ps -o pgid= -p $$) || pgid=""
  sr_emit hop-start "$NAME $pgid"
}

# sr_count_blocks ON_BLOCK ON_END: copy stdin to stdout in 32 MiB blocks; after each block `ON_BLOCK TOTAL` (the
# bytes copied so far), at the end `ON_END TOTAL`.
sr_count_blocks() {
  local n total=0
  exec 4>&1 # the data goes on to stdout; dd's report (on its stderr) is what the substitution reads
  while :; do
    n=$(LC_ALL=C dd bs=1M count=32 iflag=fullblock 2>&1 >&4 | awk '/copied/ { print $1 }')
    if [ -z "$n" ] || ((n == 0)); then break; fi
    total=$((total + n))
    "$1" "$total"
  done
  "$2" "$total"
}

# sr_chain_send EMIT: the source of a chain. EMIT (a function) writes the whole stream to stdout. Without NEXT_SSH
# that is this script's stdout; with it, the stream goes to the first hop over SSH from this host, and the first
# hop's stdout (the events of the whole chain) comes back through this script's stdout, line by line so that it
# never interleaves with this script's own events (fd 3) mid-line. The status is EMIT's, or the connection's.
sr_chain_send() {
  if ((${#NEXT_SSH[@]} == 0)); then
    "$1"
    return
  fi
  local codes
  sr_send_err=$(mktemp "${TMPDIR:-/tmp}/sparkrun-send.XXXXXX") || sr_fail send "cannot create a temporary file"
  trap 'rm -f "$sr_send_err"' EXIT
  exec 3>&1
  # shellcheck disable=SC2034  # read by sr_emit (lib.sh)
  SR_EVENT_FD=3
  "$1" | "${NEXT_SSH[@]}" "$NEXT_COMMAND" 2>"$sr_send_err" | grep --line-buffered ''
  codes=("${PIPESTATUS[@]}")
  if ((codes[1] != 0)); then
    sr_emit hop-next "$NAME $NEXT_NAME ${codes[1]} $(tail -n 1 "$sr_send_err")"
  fi
  ((codes[0] == 0 && codes[1] == 0))
}

# sr_chain_forward RECEIVE DIR: a hop of a chain. RECEIVE (a function) reads this hop's share of the stream on stdin.
# With NEXT_SSH every byte is also forwarded to the next hop as it arrives (tee -p: a next hop that goes away never
# stops this one), and the next hop's stdout (the events of the rest of the chain) goes on to this script's stdout.
# DIR is a directory of this script's own (it keeps the next hop's exit status and last error line there).
sr_chain_forward() {
  if ((${#NEXT_SSH[@]} == 0)); then
    "$1"
    return
  fi
  local dir=$2 rc
  exec 3>&1
  tee -p >(
    "${NEXT_SSH[@]}" "$NEXT_COMMAND" 2>"$dir/err" | grep --line-buffered '' >&3
    echo "${PIPESTATUS[0]}" >"$dir/rc"
  ) | "$1"
  until [ -s "$dir/rc" ]; do sleep 0.1; done
  rc=$(<"$dir/rc")
  ((rc == 0)) || sr_emit hop-next "$NAME $NEXT_NAME $rc $(tail -n 1 "$dir/err")"
}
