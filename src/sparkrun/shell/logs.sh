#!/usr/bin/env bash
# logs.sh: print (or follow) the engine logs of containers on this host.
# Inputs (preamble): CONTAINERS (array), TAIL (number or "all"), FOLLOW (1/0), PREFIX (1/0: prefix lines with the name)
# shellcheck disable=SC2154  # inputs come from the preamble

sr_require_docker
args=(--tail "$TAIL")
[ "$FOLLOW" = 1 ] && args+=(--follow)
if [ "$PREFIX" != 1 ] && [ "${#CONTAINERS[@]}" -eq 1 ]; then
  exec docker logs "${args[@]}" "${CONTAINERS[0]}" 2>&1
fi
for c in "${CONTAINERS[@]}"; do
  docker logs "${args[@]}" "$c" 2>&1 | sed -u "s|^|[$c] |" &
done
wait
