#!/usr/bin/env bash
# image_send.sh: the source of an image copy: `docker save IMAGE` as a stream, after the scripts of the hops after
# the first one (each hop runs its own and forwards the rest, see image_recv.sh). With PULL=1 an image this host lacks
# is pulled first (from its registry). With NEXT_SSH the stream goes to the first hop over SSH from this host and the
# chain's events come back on stdout; without, the stream is this script's stdout (events on stderr).
# Inputs (preamble): NAME, IMAGE, PULL, HOP_SCRIPTS (array), NEXT_SSH (array), NEXT_COMMAND, NEXT_NAME
# Events: image-pulled NAME ID, send-progress NAME BYTES, send-end NAME BYTES, send-fail NAME CAUSE,
#   hop-next NAME NEXT STATUS CAUSE
# shellcheck disable=SC2154  # inputs come from the preamble

sr_have docker || sr_fail docker "docker is not installed"
if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  [ "$PULL" = 1 ] || sr_fail image "$IMAGE is not on $NAME"
  if ! err=$(docker pull -q "$IMAGE" 2>&1 >/dev/null); then
    sr_fail pull "cannot pull $IMAGE: $(sr_docker_error "$err")"
  fi
  sr_emit image-pulled "$NAME $(docker image inspect --format '{{.Id}}' "$IMAGE")"
fi

# counted: copy stdin to stdout in 32 MiB blocks, reporting the bytes copied so far after each block.
counted() {
  local n total=0
  exec 4>&1 # the data goes on to stdout; dd's report (on its stderr) is what the substitution reads
  while :; do
    n=$(LC_ALL=C dd bs=1M count=32 iflag=fullblock 2>&1 >&4 | awk '/copied/ { print $1 }')
    if [ -z "$n" ] || ((n == 0)); then break; fi
    total=$((total + n))
    sr_emit send-progress "$NAME $total"
  done
  sr_emit send-end "$NAME $total"
}

emit_stream() {
  printf '%s' "${HOP_SCRIPTS[@]}"
  docker save "$IMAGE" | counted
  local codes=("${PIPESTATUS[@]}")
  ((codes[0] == 0)) || sr_emit send-fail "$NAME docker save $IMAGE failed (status ${codes[0]})"
  ((codes[0] == 0))
}

if ((${#NEXT_SSH[@]} == 0)); then
  emit_stream
  exit
fi

err=$(mktemp "${TMPDIR:-/tmp}/sparkrun-send.XXXXXX") || sr_fail send "cannot create a temporary file"
trap 'rm -f "$err"' EXIT
exec 3>&1
# shellcheck disable=SC2034  # read by sr_emit (lib.sh)
SR_EVENT_FD=3
emit_stream | "${NEXT_SSH[@]}" "$NEXT_COMMAND" 2>"$err" | grep --line-buffered ''
codes=("${PIPESTATUS[@]}")
if ((codes[1] != 0)); then
  sr_emit hop-next "$NAME $NEXT_NAME ${codes[1]} $(tail -n 1 "$err")"
fi
((codes[0] == 0 && codes[1] == 0))
