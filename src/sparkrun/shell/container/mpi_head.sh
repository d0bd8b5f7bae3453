#!/usr/bin/env bash
# mpi_head.sh: the main process of the head container of a multi-node trtllm job (runs INSIDE the container).
#
# Writes the rsh agent Open MPI's mpirun uses to start ranks in the worker containers (`--mca plm_rsh_agent`), then
# replaces itself with mpirun, so mpirun is the container's main process (`docker logs` shows every rank's output).
# The agent reaches a worker host over the HOSTS' SSH, with the SSH user's keys and known_hosts mounted read-only at
# SSH_DIR (host-key checking stays on), and runs the rank there with `docker exec -i CONTAINER`: no sshd runs in any
# container. Values arrive only as positional arguments:
#
#   bash -c "$(cat mpi_head.sh)" sparkrun-mpi-head \
#       AGENT_DIR SSH_DIR SSH_USER SSH_PORT ADDRESS CONTAINER [ADDRESS CONTAINER]... -- MPIRUN_ARGV...
#
# SSH_USER / SSH_PORT empty = ssh's defaults. Exit codes: 2 usage, 3 no ssh client, key or known_hosts; otherwise
# mpirun's own.
set -euo pipefail

say() { printf 'sparkrun-mpi-head: %s\n' "$*" >&2; }
usage() {
  say "usage: AGENT_DIR SSH_DIR SSH_USER SSH_PORT ADDRESS CONTAINER [ADDRESS CONTAINER]... -- MPIRUN_ARGV..."
  exit 2
}

[[ $# -ge 4 ]] || usage
agent_dir=$1
ssh_dir=$2
ssh_user=$3
ssh_port=$4
shift 4
targets=()
while [[ $# -gt 0 && $1 != "--" ]]; do
  [[ $# -ge 2 ]] || usage
  if [[ ! $2 =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]]; then
    say "not a container name: '$2'"
    exit 2
  fi
  targets+=("$1 $2")
  shift 2
done
[[ $# -ge 2 && $1 == "--" && ${#targets[@]} -gt 0 ]] || usage
shift
if [[ -n $ssh_port && ! $ssh_port =~ ^[0-9]+$ ]]; then
  say "not a port number: '$ssh_port'"
  exit 2
fi

if ! command -v ssh >/dev/null 2>&1; then
  say "the image has no 'ssh' client; mpirun needs one to start the ranks in the worker containers"
  exit 3
fi
keys=()
for name in id_ed25519 id_ecdsa id_rsa; do
  if [[ -r $ssh_dir/$name ]]; then keys+=("$ssh_dir/$name"); fi
done
if [[ ${#keys[@]} -eq 0 ]]; then
  say "no SSH key (id_ed25519, id_ecdsa or id_rsa) in $ssh_dir, the SSH user's ~/.ssh on the head host;" \
    "the head reaches the workers over SSH: give that user a key the workers accept"
  exit 3
fi
if [[ ! -r $ssh_dir/known_hosts ]]; then
  say "no known_hosts in $ssh_dir (the SSH user's ~/.ssh on the head host); host-key checking stays on:" \
    "ssh once from the head to each worker address to record its key"
  exit 3
fi

opts=(-F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$ssh_dir/known_hosts"
  -o IdentitiesOnly=yes -o ConnectTimeout=10)
for key in "${keys[@]}"; do opts+=(-i "$key"); done
if [[ -n $ssh_user ]]; then opts+=(-l "$ssh_user"); fi
if [[ -n $ssh_port ]]; then opts+=(-p "$ssh_port"); fi

mkdir -p "$agent_dir"
printf '%s\n' "${targets[@]}" >"$agent_dir/targets"
printf '%s\n' "${opts[@]}" >"$agent_dir/ssh-options"
cat >"$agent_dir/rsh-agent" <<'AGENT'
#!/usr/bin/env bash
# sparkrun's rsh agent for Open MPI (`--mca plm_rsh_agent`): `rsh-agent [OPTIONS] HOST COMMAND...` runs COMMAND in
# this job's container on HOST, as `ssh HOST docker exec -i CONTAINER COMMAND...`. mpirun quotes COMMAND for the
# remote shell, as it does for its default ssh agent; `targets` maps each address to its container.
set -euo pipefail
dir=$(dirname "$0")
while [[ $# -gt 0 && $1 == -* ]]; do shift; done
if [[ $# -lt 2 ]]; then
  echo "sparkrun-rsh-agent: usage: rsh-agent HOST COMMAND..." >&2
  exit 255
fi
host=$1
shift
container=$(awk -v h="$host" '$1 == h { print $2; exit }' "$dir/targets")
if [[ -z $container ]]; then
  echo "sparkrun-rsh-agent: $host is not a host of this job ($(cut -d' ' -f1 "$dir/targets" | paste -sd, -))" >&2
  exit 255
fi
mapfile -t opts <"$dir/ssh-options"
exec ssh "${opts[@]}" "$host" docker exec -i "$container" "$@"
AGENT
chmod 755 "$agent_dir/rsh-agent"

say "rsh agent ready for ${#targets[@]} worker container(s); starting $1"
exec "$@"
