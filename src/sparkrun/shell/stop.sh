#!/usr/bin/env bash
# stop.sh: stop and remove a job's containers on this host (idempotent: nothing to stop is success).
# Inputs (preamble): JOB_ID (empty: every sparkrun container), STOP_TIMEOUT (seconds for a graceful stop),
#   SETTLE (seconds to keep watching for containers that an interrupted `docker run` may still create)
# A launch lease of the job (lease.sh) is revoked first: its watchdog ends a launch script still running here.
# Events: removed NAME, count N
# shellcheck disable=SC2154  # inputs come from the preamble

sr_require_docker
filter="label=sparkrun.job"
[ -z "$JOB_ID" ] || filter="label=sparkrun.job=$JOB_ID"

for lease in "$(sr_lease_dir "")"${JOB_ID:-*}; do
  [ -d "$lease" ] || continue
  (
    if sr_have flock; then flock -w 10 9; fi
    if [ "$(cat "$lease/state" 2>/dev/null)" = active ]; then
      printf 'revoked\n' >"$lease/.state.tmp" && mv -f "$lease/.state.tmp" "$lease/state"
    else
      rm -rf "$lease"
    fi
  ) 9>>"$lease/lock"
done

removed=0
remove_matching() {
  local names err n
  mapfile -t names < <(docker ps -a --filter "$filter" --format '{{.Names}}')
  [ "${#names[@]}" -gt 0 ] || return 0
  docker stop -t "$STOP_TIMEOUT" "${names[@]}" >/dev/null 2>&1 || true
  if ! err=$(docker rm -f "${names[@]}" 2>&1 >/dev/null); then
    # a lease watchdog may have removed some of them first: only those still there are a failure
    [ -z "$(docker ps -aq --filter "$filter")" ] || sr_fail remove "docker rm failed: ${err##*$'\n'}"
  fi
  for n in "${names[@]}"; do sr_emit removed "$n"; done
  removed=$((removed + ${#names[@]}))
}

remove_matching
for ((i = 0; i < SETTLE; i++)); do
  sleep 1
  remove_matching
done
sr_emit count "$removed"
