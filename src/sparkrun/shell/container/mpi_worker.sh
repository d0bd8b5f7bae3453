#!/usr/bin/env bash
# mpi_worker.sh: the main process of a worker container of a multi-node trtllm job (runs INSIDE the container).
#
# Holds the container until mpirun on the head starts this rank in it (through `docker exec`, see mpi_head.sh), and
# exits once the processes mpirun started have all ended, so the container's life follows the job's. SIGTERM
# (`docker stop`, `sparkrun stop`) ends it at once with status 0. Values arrive only as positional arguments:
#
#   bash -c "$(cat mpi_worker.sh)" sparkrun-mpi-worker HEAD_ADDRESS RANK
#
# A process started by `docker exec` has no parent inside the container (its parent pid reads 0); one of mpirun's is
# an Open MPI daemon (orted, prted) or a rank (OMPI_COMM_WORLD_RANK in its environment). Other `docker exec`
# sessions (a user's shell, sparkrun's hooks) neither hold nor release the container.
set -uo pipefail

say() { printf 'sparkrun-mpi-worker: %s\n' "$*"; }

if [[ $# -ne 2 || ! $2 =~ ^[0-9]+$ ]]; then
  say "usage: HEAD_ADDRESS RANK" >&2
  exit 2
fi
head=$1
rank=$2

# is_mpi PID: true when PID is an Open MPI daemon or rank.
is_mpi() {
  local arg0 var
  { IFS= read -r -d '' arg0 <"/proc/$1/cmdline"; } 2>/dev/null || return 1
  [[ ${arg0##*/} == orted || ${arg0##*/} == prted ]] && return 0
  while IFS= read -r -d '' var; do
    [[ $var == OMPI_COMM_WORLD_RANK=* ]] && return 0
  done 2>/dev/null <"/proc/$1/environ"
  return 1
}

# mpi_running: true while a process mpirun started with `docker exec` runs in this container.
mpi_running() {
  local stat pid rest ppid
  for stat in /proc/[0-9]*/stat; do
    pid=${stat#/proc/}
    pid=${pid%/stat}
    [[ $pid == 1 || $pid == "$$" ]] && continue
    { read -r rest <"$stat"; } 2>/dev/null || continue
    rest=${rest##*) }
    read -r _ ppid _ <<<"$rest"
    [[ $ppid == 0 ]] && is_mpi "$pid" && return 0
  done
  return 1
}

trap 'say "stopping"; exit 0' TERM INT
say "rank $rank: waiting for mpirun on $head to start this rank here"
seen=0
idle=0
while :; do
  if mpi_running; then
    if ((seen == 0)); then say "rank $rank: started by mpirun"; fi
    seen=1
    idle=0
  elif ((seen)); then
    idle=$((idle + 1))
    if ((idle >= 3)); then
      say "rank $rank: the processes mpirun started here have ended; exiting"
      exit 0
    fi
  fi
  sleep 1 &
  wait $! || true
done
