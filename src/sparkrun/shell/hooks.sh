#!/usr/bin/env bash
# hooks.sh: run recipe hooks in order, each with its own timeout; stop at the first failure.
# Inside a container (CONTAINER set: `post_exec` on the head) or on this machine (CONTAINER empty: `post_commands`).
# Inputs (preamble): CONTAINER, HOOKS (array of shell texts), TIMEOUTS (array of seconds), LABELS (array), LOG_LINES
# Events: hook LABEL SECONDS, fail STEP CAUSE (+ block "log": the hook's output tail)
# shellcheck disable=SC2154  # inputs come from the preamble

[ -z "$CONTAINER" ] || sr_require_docker
for i in "${!HOOKS[@]}"; do
  start=$(sr_now)
  if [ -n "$CONTAINER" ]; then
    out=$(timeout "${TIMEOUTS[$i]}" docker exec "$CONTAINER" bash -c "${HOOKS[$i]}" 2>&1)
  else
    out=$(timeout "${TIMEOUTS[$i]}" bash -c "${HOOKS[$i]}" 2>&1)
  fi
  rc=$?
  if [ $rc -ne 0 ]; then
    printf '%s\n' "$out" | tail -n "$LOG_LINES" | sr_block log
    [ $rc -eq 124 ] && sr_fail "${LABELS[$i]}" "timed out after ${TIMEOUTS[$i]}s"
    sr_fail "${LABELS[$i]}" "exited with status $rc"
  fi
  sr_emit hook "${LABELS[$i]} $(sr_elapsed "$start")"
done
