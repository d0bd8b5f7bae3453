#!/usr/bin/env bash
# launch.sh: start one rank's container and wait until it is up (its port listens, or it stays running).
# The `docker run` line arrives whole (DOCKER_ARGV, rendered once by sparkrun/launch/container.py): this script
# makes sure the image is there, starts it, feeds gated containers their files and hooks, and waits.
# Inputs (preamble):
#   CONTAINER    container name            DOCKER_ARGV  array: the complete `docker run ...` argv
#   IMAGE        the image DOCKER_ARGV runs
#   IMAGE_SOURCE when IMAGE is absent here: make it from this image (pulled if missing), tagged as IMAGE (eugr's
#                local build tags run as their published twin); empty: pull IMAGE itself
#   PULL         "missing": docker pull what is absent; "never" (--offline): fail instead
#   ENSURE_DIRS  array: directories that must exist on this host first (the Hugging Face cache)
#   REQUIRE_PATHS array: host paths a runtime mounts that must already exist here (never created)
#   SECRET_BYTES length of the private env file at the start of stdin (read by `docker run --env-file /dev/stdin`)
#   COPY_BYTES / COPY_DESTS  arrays: tar streams that follow on stdin, unpacked into the container (mods)
#   GATED        1: the container starts held by gate.sh; copy the tar streams, run PRE_HOOKS (PRE_TIMEOUTS,
#                named PRE_LABELS) via docker exec, then release the engine
#   WAIT_ADDR / WAIT_PORT / WAIT_TIMEOUT   after start, wait for WAIT_ADDR:WAIT_PORT (empty port: liveness check)
#   LOG_LINES    how many log lines to show on failure
#   JOB_ID / LEASE_TOKEN  the launch lease `lease.sh start` took on this host (empty token: no lease, --no-rm)
# Events: image, hook, started, fail (+ block "log")
# shellcheck disable=SC2154  # inputs come from the preamble

sr_require_docker

# The launch lease: start nothing once it has ended, and let the host's watchdog end this script (its process group)
# if the lease runs out while it still pulls, waits or runs hooks.
if [ -n "$LEASE_TOKEN" ]; then
  lease=$(sr_lease_dir "$JOB_ID")
  lease_state=$(cat "$lease/state" 2>/dev/null || echo missing)
  [ "$(cat "$lease/token" 2>/dev/null)" = "$LEASE_TOKEN" ] || lease_state=superseded
  [ "$lease_state" = active ] || sr_fail lease "the launch lease on this host ended before the start ($lease_state)"
  read -r -a self <<<"$(sed 's/.*) //' "/proc/$$/stat")"     # fields 3..: state ppid pgrp ...
  read -r -a leader <<<"$(sed 's/.*) //' "/proc/${self[2]}/stat")" # field 22: start time
  printf '%s %s\n' "${self[2]}" "${leader[19]}" >"$lease/launch"
  trap 'rm -f "$lease/launch"' EXIT
fi

if docker container inspect "$CONTAINER" >/dev/null 2>&1; then
  docker rm -f "$CONTAINER" >/dev/null 2>&1 || sr_fail remove-old "cannot remove the old container $CONTAINER"
fi

# pull_image IMAGE: docker pull, or fail naming docker's own error line.
pull_image() {
  [ "$PULL" = missing ] || sr_fail image "image $1 is not present on this host and --offline forbids pulling"
  local err
  if ! err=$(docker pull "$1" 2>&1 >/dev/null); then
    sr_fail pull "docker pull $1 failed: $(sr_docker_error "$err")"
  fi
}

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  if [ -n "$IMAGE_SOURCE" ]; then
    docker image inspect "$IMAGE_SOURCE" >/dev/null 2>&1 || pull_image "$IMAGE_SOURCE"
    docker tag "$IMAGE_SOURCE" "$IMAGE" || sr_fail image "cannot tag $IMAGE_SOURCE as $IMAGE"
    sr_emit image "$IMAGE from $IMAGE_SOURCE"
  else
    pull_image "$IMAGE"
    sr_emit image "$IMAGE pulled"
  fi
fi

for path in "${REQUIRE_PATHS[@]}"; do
  [ -e "$path" ] || sr_fail mount "$path does not exist on this host (the runtime mounts it into the container)"
done

for dir in "${ENSURE_DIRS[@]}"; do
  mkdir -p "$dir" 2>/dev/null || sr_fail hf-cache "cannot create $dir"
done

if [ "$SECRET_BYTES" -gt 0 ]; then
  run_err=$(head -c "$SECRET_BYTES" | "${DOCKER_ARGV[@]}" 2>&1 >/dev/null)
else
  run_err=$("${DOCKER_ARGV[@]}" 2>&1 >/dev/null </dev/null)
fi
rc=$?
if [ $rc -ne 0 ]; then
  sr_fail docker-run "$(sr_docker_error "$run_err")"
fi

if [ "$GATED" = 1 ]; then
  for i in "${!COPY_BYTES[@]}"; do
    docker exec "$CONTAINER" mkdir -p "${COPY_DESTS[$i]}" >/dev/null 2>&1 ||
      sr_fail copy "cannot create ${COPY_DESTS[$i]} in the container"
    if ! err=$(head -c "${COPY_BYTES[$i]}" | docker cp - "$CONTAINER:${COPY_DESTS[$i]}" 2>&1); then
      sr_fail copy "docker cp to ${COPY_DESTS[$i]} failed: $(sr_docker_error "$err")"
    fi
  done
  for i in "${!PRE_HOOKS[@]}"; do
    out=$(timeout "${PRE_TIMEOUTS[$i]}" docker exec "$CONTAINER" bash -c "${PRE_HOOKS[$i]}" 2>&1 </dev/null)
    rc=$?
    if [ $rc -ne 0 ]; then
      state=$(sr_state "$CONTAINER")
      if [ "$state" != running ]; then
        sr_log_tail "$CONTAINER" "$LOG_LINES"
        sr_fail start "the container exited before its hooks finished ($state)"
      fi
      printf '%s\n' "$out" | tail -n "$LOG_LINES" | sr_block log
      [ $rc -eq 124 ] && sr_fail "${PRE_LABELS[$i]}" "timed out after ${PRE_TIMEOUTS[$i]}s"
      sr_fail "${PRE_LABELS[$i]}" "exited with status $rc"
    fi
    sr_emit hook "${PRE_LABELS[$i]}"
  done
  docker exec "$CONTAINER" touch /tmp/.sparkrun-go || sr_fail gate "cannot release the engine"
fi

start=$(sr_now)
deadline=$(($(date +%s) + WAIT_TIMEOUT))
while :; do
  state=$(sr_state "$CONTAINER")
  if [ "$state" != running ]; then
    sr_docker_alive
    sr_log_tail "$CONTAINER" "$LOG_LINES"
    sr_fail start "the engine exited during start-up ($state)"
  fi
  if [ -z "$WAIT_PORT" ]; then
    # No port to wait for: make sure the process survives its first moment.
    sleep 0.5
    [ "$(sr_state "$CONTAINER")" = running ] && break
    continue
  fi
  sr_port_open "$WAIT_ADDR" "$WAIT_PORT" && break
  if [ "$(date +%s)" -ge "$deadline" ]; then
    sr_log_tail "$CONTAINER" "$LOG_LINES"
    sr_fail wait-port "port $WAIT_PORT did not open within ${WAIT_TIMEOUT}s"
  fi
  sleep 0.2
done
sr_emit started "$CONTAINER $(sr_elapsed "$start")"
