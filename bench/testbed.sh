#!/usr/bin/env bash
# bench/testbed.sh - bring-up time and memory of the local test cluster (scripts/testbed.sh) for 2, 4, 8 hosts.
#
# Usage: sudo bench/testbed.sh [SIZES...]        (default: 2 4 8; RUNS=5 timed runs per size)
# For each size: `up N` from clean (engine rootfs cached) timed with hyperfine (--prepare 'down'), `up N` again
# on the running cluster (the idempotent path), `down`, and the PSS of every testbed process (sshd, dockerd,
# containerd, host init; /proc/PID/smaps_rollup), idle and with one stand-in vLLM container per host.
# Prints a markdown table and keeps the raw hyperfine JSON in bench/results/testbed-<date>/.
# Needs the machine to itself: it refuses to run while a testbed is up (it would have to tear it down).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TB="$ROOT/scripts/testbed.sh"
RUNS=${RUNS:-5}
SIZES=("$@")
((${#SIZES[@]})) || SIZES=(2 4 8)
export TB_STATE=${TB_STATE:-/var/lib/sparkrun-testbed}
# keep the cluster file out of the invoking user's sparkrun config
SPARKRUN_CONFIG_DIR=$(mktemp -d)
export SPARKRUN_CONFIG_DIR
OUT="$ROOT/bench/results/testbed-$(date +%Y%m%d-%H%M%S)"

[ "$(id -u)" = 0 ] || { echo "bench/testbed.sh: needs root" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "bench/testbed.sh: needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
if [ -n "$(bash "$TB" running)" ]; then
  echo "bench/testbed.sh: a testbed is up ($(bash "$TB" running | tr '\n' ' ')); it needs the machine to itself." >&2
  echo "Run 'scripts/testbed.sh down' first if that cluster is yours." >&2
  exit 1
fi
mkdir -p "$OUT"

mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }

pss_containers() { # N: PSS with one idle stand-in vLLM server per host
  local n=$1 i
  for ((i = 1; i <= n; i++)); do
    DOCKER_HOST="unix://$TB_STATE/h$i/run/docker.sock" docker run -d --name bench_vllm --network host --gpus all \
      -e STANDIN_STARTUP_SECONDS=0 sparkrun-test/engine:latest vllm serve Qwen/Qwen3-0.6B --port 8000 >/dev/null &
  done
  wait
  for ((i = 1; i <= n; i++)); do
    until curl -sf -o /dev/null "http://10.213.0.$((10 + i)):8000/health"; do sleep 0.1; done
  done
  bash "$TB" mem
  for ((i = 1; i <= n; i++)); do
    DOCKER_HOST="unix://$TB_STATE/h$i/run/docker.sock" docker rm -f bench_vllm >/dev/null &
  done
  wait
}

echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)" | tee "$OUT/table.md"
bash "$TB" up 1 >/dev/null 2>&1 # builds the engine rootfs once (cached for every run below)
bash "$TB" down >/dev/null 2>&1
{
  echo
  echo "| hosts | up from clean (mean ± sd, min..max) | up when up | down | PSS idle | PSS + 1 vLLM stand-in/host |"
  echo "|---|---|---|---|---|---|"
} | tee -a "$OUT/table.md"
for n in "${SIZES[@]}"; do
  hyperfine -N --runs "$RUNS" --prepare "bash $TB down" --export-json "$OUT/up-$n.json" "bash $TB up $n" >"$OUT/up-$n.txt" 2>&1
  hyperfine -N --runs "$RUNS" --export-json "$OUT/reup-$n.json" "bash $TB up $n" >"$OUT/reup-$n.txt" 2>&1
  sleep 2 # let the daemons settle before measuring memory
  idle=$(bash "$TB" mem)
  busy=$(pss_containers "$n")
  t0=$(date +%s%N)
  bash "$TB" down >/dev/null 2>&1
  down_ms=$((($(date +%s%N) - t0) / 1000000))
  python3 - "$OUT/up-$n.json" "$OUT/reup-$n.json" "$n" "$down_ms" "$(mib "$idle")" "$(mib "$busy")" <<'EOF' | tee -a "$OUT/table.md"
import json, sys
up, reup = (json.load(open(f))["results"][0] for f in sys.argv[1:3])
n, down_ms, idle, busy = sys.argv[3:]
print(
    f"| {n} | {up['mean']:.2f} ± {up['stddev'] or 0:.2f} s ({up['min']:.2f}..{up['max']:.2f}) "
    f"| {reup['mean']:.2f} s | {int(down_ms) / 1000:.2f} s | {idle} MiB | {busy} MiB |"
)
EOF
done
rm -rf "$SPARKRUN_CONFIG_DIR"
echo
echo "raw results: $OUT"
