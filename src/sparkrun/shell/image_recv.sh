#!/usr/bin/env bash
# image_recv.sh: a hop of an image copy chain (MODE=stream): stdin is the rest of a stream from image_send.sh: the
# scripts of the hops after this one (SKIP_BYTES), then a `docker save` archive. With NEXT_SSH every byte is also
# forwarded (tee) to the next hop while it arrives; the archive is loaded here as it streams in, and the loaded image
# must have EXPECT_ID. A different image this host had under the same name is removed when nothing uses it.
# MODE=pull: `docker pull IMAGE` here (an image pinned by digest: `docker load` cannot restore a digest reference).
# Inputs (preamble): MODE, NAME, IMAGE, EXPECT_ID, SKIP_BYTES, NEXT_SSH (array), NEXT_COMMAND, NEXT_NAME
# Events: hop-start NAME PGID, hop-progress NAME BYTES BYTES, hop-fail NAME STEP CAUSE, hop-next NAME NEXT STATUS
#   CAUSE, hop-end NAME BYTES BYTES
# Uses chain_lib.sh (sr_hop_start, sr_count_blocks, sr_chain_forward), which render_script adds after lib.sh.
# shellcheck disable=SC2154  # inputs come from the preamble

exec 5>&1 # events from inside pipelines whose stdout is data
sr_hop_start
old=$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)

received_so_far() {
  # shellcheck disable=SC2034  # read by sr_emit: stdout is the archive going to docker load, events use fd 5
  local SR_EVENT_FD=5
  sr_emit hop-progress "$NAME $1 $1"
}
received_all() { echo "$1" >"$tmp/total"; }

loaded() { # check the result, drop the image this name used to mean
  local id total
  id=$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
  total=$(cat "$tmp/total" 2>/dev/null || echo 0)
  if [ -n "$EXPECT_ID" ] && [ "$id" != "$EXPECT_ID" ]; then
    sr_emit hop-fail "$NAME load $IMAGE is ${id:-missing} after loading, expected $EXPECT_ID"
  elif [ -n "$old" ] && [ "$old" != "$id" ]; then
    docker rmi "$old" >/dev/null 2>&1 || true
  fi
  sr_emit hop-end "$NAME $total $total"
}

receive() {
  local err
  ((SKIP_BYTES > 0)) && dd bs=1M count="$SKIP_BYTES" iflag=count_bytes,fullblock status=none of=/dev/null
  if ! err=$(sr_count_blocks received_so_far received_all | docker load -q 2>&1 >/dev/null); then
    sr_emit hop-fail "$NAME load docker load failed: $(sr_docker_error "$err")"
    cat >/dev/null # keep reading, so the hops after this one still get everything
  fi
  loaded
}

if [ "$MODE" = pull ]; then
  if ! err=$(docker pull -q "$IMAGE" 2>&1 >/dev/null); then
    sr_emit hop-fail "$NAME pull cannot pull $IMAGE: $(sr_docker_error "$err")"
    exit 1
  fi
  sr_emit hop-end "$NAME 0 0"
  exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sparkrun-hop.XXXXXX") || { sr_emit hop-fail "$NAME tmp no temporary directory"; exit 1; }
trap 'rm -rf "$tmp"' EXIT
sr_chain_forward receive "$tmp"
