#!/usr/bin/env bash
# image_send.sh: the source of an image copy: `docker save IMAGE` as a stream, after the scripts of the hops after
# the first one (each hop runs its own and forwards the rest, see image_recv.sh). With PULL=1 an image this host lacks
# is pulled first (from its registry). With NEXT_SSH the stream goes to the first hop over SSH from this host and the
# chain's events come back on stdout; without, the stream is this script's stdout (events on stderr).
# Inputs (preamble): NAME, IMAGE, PULL, HOP_SCRIPTS (array), NEXT_SSH (array), NEXT_COMMAND, NEXT_NAME
# Events: image-pulled NAME ID, send-progress NAME BYTES, send-end NAME BYTES, send-fail NAME CAUSE,
#   hop-next NAME NEXT STATUS CAUSE
# Uses chain_lib.sh (sr_count_blocks, sr_chain_send), which render_script adds after lib.sh.
# shellcheck disable=SC2154  # inputs come from the preamble

sr_have docker || sr_fail docker "docker is not installed"
if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  [ "$PULL" = 1 ] || sr_fail image "$IMAGE is not on $NAME"
  if ! err=$(docker pull -q "$IMAGE" 2>&1 >/dev/null); then
    sr_fail pull "cannot pull $IMAGE: $(sr_docker_error "$err")"
  fi
  sr_emit image-pulled "$NAME $(docker image inspect --format '{{.Id}}' "$IMAGE")"
fi

sent_so_far() { sr_emit send-progress "$NAME $1"; }
sent_all() { sr_emit send-end "$NAME $1"; }

emit_stream() {
  printf '%s' "${HOP_SCRIPTS[@]}"
  docker save "$IMAGE" | sr_count_blocks sent_so_far sent_all
  local codes=("${PIPESTATUS[@]}")
  ((codes[0] == 0)) || sr_emit send-fail "$NAME docker save $IMAGE failed (status ${codes[0]})"
  ((codes[0] == 0))
}

sr_chain_send emit_stream
