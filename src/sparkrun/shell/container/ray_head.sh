#!/usr/bin/env bash
# ray_head.sh: the main process of the Ray head container of a vllm-ray job (runs INSIDE the container).
#
# Starts the Ray head (non-blocking), waits until the Ray cluster has all its nodes, then replaces itself with the
# serve command, so the serve process is the container's main process: `docker logs` shows it and the container
# ends when it ends. Values arrive only as positional arguments:
#
#   bash -c "$(cat ray_head.sh)" sparkrun-ray-head \
#       RAY_PORT NODE_IP NUM_NODES TIMEOUT_S POLL_S DASHBOARD_PORT -- SERVE_COMMAND...
#
# DASHBOARD_PORT empty = no Ray dashboard. Exit codes: 2 usage, 3 `ray` missing, 4 the cluster did not assemble
# within TIMEOUT_S; otherwise the serve command's own.
set -euo pipefail

say() { printf 'sparkrun-ray-head: %s\n' "$*" >&2; }

if [[ $# -lt 8 || $7 != "--" ]]; then
  say "usage: RAY_PORT NODE_IP NUM_NODES TIMEOUT_S POLL_S DASHBOARD_PORT -- SERVE_COMMAND..."
  exit 2
fi
ray_port=$1
node_ip=$2
num_nodes=$3
timeout_s=$4
poll_s=$5
dashboard_port=$6
shift 7

for number in "$ray_port" "$num_nodes" "$timeout_s"; do
  if [[ ! $number =~ ^[0-9]+$ ]]; then
    say "expected a whole number, got '$number'"
    exit 2
  fi
done
if [[ ! $poll_s =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
  say "expected a number of seconds to poll, got '$poll_s'"
  exit 2
fi

if ! command -v ray >/dev/null 2>&1; then
  say "the image has no 'ray' executable; vllm-ray needs an image with Ray installed"
  exit 3
fi

ray_args=(start --head --port "$ray_port" --node-ip-address "$node_ip" --disable-usage-stats)
if [[ -n $dashboard_port ]]; then
  ray_args+=(--include-dashboard true --dashboard-host 0.0.0.0 --dashboard-port "$dashboard_port")
else
  ray_args+=(--include-dashboard false)
fi
say "starting the Ray head on $node_ip:$ray_port, waiting for $num_nodes node(s)"
ray "${ray_args[@]}"

# Active nodes in `ray status`: the lines " <count> node_<id>" between "Active:" and "Pending:".
active_nodes() {
  ray status --address "$node_ip:$ray_port" 2>/dev/null |
    awk '/^Active:/ { on = 1; next } /^[A-Z][A-Za-z ]*:/ { on = 0 } on && $2 ~ /^node_/ { n += $1 } END { print n + 0 }'
}

deadline=$((SECONDS + timeout_s))
while true; do
  have=$(active_nodes) || have=0
  if ((have >= num_nodes)); then
    break
  fi
  if ((SECONDS >= deadline)); then
    say "the Ray cluster has $have of $num_nodes node(s) after ${timeout_s}s;" \
      "check that every worker container is running and can reach $node_ip:$ray_port"
    ray stop --force >/dev/null 2>&1 || true
    exit 4
  fi
  sleep "$poll_s"
done

say "Ray cluster ready ($have node(s)); starting $1"
exec "$@"
