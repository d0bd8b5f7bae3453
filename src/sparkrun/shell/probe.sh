#!/usr/bin/env bash
# probe.sh: facts about one host, in one round trip, before anything is changed.
# Inputs (preamble): IMAGES (array: images to look up), PORTS (array: TCP ports that must be free),
#   JOB_ID (job whose containers may already run here; may be empty), PEER (address to route towards; may be empty),
#   IB_DETECT (text of ib_detect.sh to run here for the NCCL/UCX/GLOO env of multi-node containers; empty: skip),
#   HEAD_ADDRESS (the head's address, name or IP, for ib_detect)
# Events: docker, image, port, gpu, disk, home, user, addr, arch, curl, container NAME STATE,
#   job JOB PORT STATE ROLE RECIPE (other jobs' containers), lease JOB (launching here), ib_env KEY=VALUE, ib_error
# shellcheck disable=SC2154  # inputs come from the preamble

sr_emit arch "$(uname -m)"
sr_emit home "$HOME"
sr_emit user "$(id -un 2>/dev/null || echo "?")"
if sr_have curl; then sr_emit curl yes; else sr_emit curl no; fi

sr_emit gpu "$(sr_gpu_summary)"

# resolve NAME: an IPv4 address for NAME (itself when it is one already).
resolve() {
  if [[ $1 =~ ^[0-9.]+$ || $1 == *:* ]]; then
    printf '%s' "$1"
  else
    getent ahostsv4 "$1" 2>/dev/null | awk 'NR == 1 { print $1 }'
  fi
}

if [ -n "$PEER" ]; then
  peer_ip=$(resolve "$PEER")
  src=""
  if [ -n "$peer_ip" ] && sr_have ip; then
    src=$(ip -o route get "$peer_ip" 2>/dev/null | sed -n 's/.* src \([^ ]*\).*/\1/p')
  fi
  sr_emit addr "${src:--}"
fi

if [ -n "$IB_DETECT" ]; then
  if ib_out=$(env HEAD_ADDRESS="$(resolve "$HEAD_ADDRESS")" bash -c "$IB_DETECT" 2>/dev/null); then
    while IFS= read -r line; do
      [ -z "$line" ] || sr_emit ib_env "$line"
    done <<<"$ib_out"
  else
    sr_emit ib_error "interface detection (ib_detect.sh) failed"
  fi
fi

for port in "${PORTS[@]}"; do
  if sr_port_open 127.0.0.1 "$port"; then sr_emit port "$port busy"; else sr_emit port "$port free"; fi
done

if ! sr_have docker; then
  sr_emit docker "missing docker is not installed"
  exit 0
fi
if ! err=$(docker version --format '{{.Server.Version}}' 2>&1); then
  sr_emit docker "unreachable ${err##*$'\n'}"
  exit 0
fi
sr_emit docker "ok $err"

root=$(docker info --format '{{.DockerRootDir}}' 2>/dev/null || true)
if [ -n "$root" ] && [ -d "$root" ]; then
  sr_emit disk "$(df -Pk "$root" | awk 'NR == 2 { print $4 }')"
fi

for image in "${IMAGES[@]}"; do
  id=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
  sr_emit image "$image ${id:--}"
done

# Jobs whose launch is still in progress here (an active launch lease, see lease.sh).
for lease in "$(sr_lease_dir "")"*/; do
  [ "$(cat "${lease}state" 2>/dev/null)" != active ] || sr_emit lease "$(basename "$lease")"
done

# This job's containers (replaced or reused), and the ports other jobs' API containers here hold (named on a clash).
docker ps -a --filter label=sparkrun.job --format \
  '{{.Label "sparkrun.job"}} {{.Names}} {{.State}} {{.Label "sparkrun.port"}} {{.Label "sparkrun.role"}} {{.Label "sparkrun.recipe"}}' |
  while read -r job name state port role recipe; do
    if [ "$job" = "$JOB_ID" ]; then
      sr_emit container "$name $state"
    else
      sr_emit job "$job $port $state $role $recipe"
    fi
  done
exit 0
