#!/usr/bin/env bash
# status.sh: every sparkrun container on this host (or one job's), straight from the Docker Engine API.
# One curl to the daemon's socket is about half the cost of a `docker ps` (which matters when `status` fans out).
# Inputs (preamble): JOB_ID (empty: all sparkrun containers)
# Events: docker ok, containers JSON (the API's /containers/json answer: Names, Image, State, Status, Created, Labels)
# shellcheck disable=SC2154  # inputs come from the preamble

sr_have curl || sr_fail docker "curl is not installed (sparkrun needs it on the hosts)"
endpoint=${DOCKER_HOST:-unix:///var/run/docker.sock}
case $endpoint in
  unix://*)
    sock=${endpoint#unix://}
    [ -S "$sock" ] || sr_fail docker "no docker daemon socket at $sock (is docker installed and running?)"
    if ! [ -r "$sock" ] || ! [ -w "$sock" ]; then
      sr_fail docker "no permission on $sock (add the SSH user to the docker group)"
    fi
    target=(--unix-socket "$sock")
    base=http://docker
    ;;
  tcp://*)
    target=()
    base="http://${endpoint#tcp://}"
    ;;
  *) sr_fail docker "unsupported DOCKER_HOST $endpoint" ;;
esac
label=sparkrun.job
[ -z "$JOB_ID" ] || label="sparkrun.job=$JOB_ID"
if ! out=$(curl -sS --fail --max-time 20 -G --data-urlencode all=1 \
  --data-urlencode "filters={\"label\":[\"$label\"]}" "${target[@]}" "$base/containers/json" 2>&1); then
  sr_fail docker "cannot reach the docker daemon: ${out##*$'\n'}"
fi
sr_emit docker ok
sr_emit containers "$out"
