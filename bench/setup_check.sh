#!/usr/bin/env bash
# bench/setup_check.sh - wall time of `sparkrun setup check` on 1, 4 and 8 hosts of the local test cluster (root;
# public tools: hyperfine). One read-only round trip per host: SSH, the mesh (each host tries the others), docker and
# the GPU in a throwaway container, cache, disk, clock, CX7, earlyoom.
#
#   warm: SSH connections already up (sparkrun's ControlMaster, kept 120 s), the usual case for a second command
#   cold: a fresh control directory for every run, so every host costs a new SSH handshake
# Usage: sudo bench/setup_check.sh      (RUNS=10 warm, COLD_RUNS=3 cold by default). Takes its turn on the shared
# cluster ($TB_STATE/sessions.lock); brings up 8 hosts if fewer are up and tears them down again at the end.
# Raw hyperfine JSON: bench/results/setup-check-<date>/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TB="$ROOT/scripts/testbed.sh"
SR="$ROOT/.venv/bin/sparkrun"
RUNS=${RUNS:-10}
COLD_RUNS=${COLD_RUNS:-3}
export TB_STATE=${TB_STATE:-/var/lib/sparkrun-testbed}
OUT="$ROOT/bench/results/setup-check-$(date +%Y%m%d-%H%M%S)"

[ "$(id -u)" = 0 ] || { echo "bench/setup_check.sh: needs root" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
mkdir -p "$OUT" "$TB_STATE"

exec 9>>"$TB_STATE/sessions.lock"
if ! flock -n 9; then
  echo "waiting for the test cluster (another session holds $TB_STATE/sessions.lock)" >&2
  flock 9
fi

SPARKRUN_CONFIG_DIR=$(mktemp -d)
SPARKRUN_SSH_CONTROL_DIR=$(mktemp -d -p /tmp sr-bench-ctl.XXXXXX)
export SPARKRUN_CONFIG_DIR SPARKRUN_CACHE_DIR=$SPARKRUN_CONFIG_DIR/cache SPARKRUN_SSH_CONTROL_DIR
owned=0
if [ "$(bash "$TB" running | wc -l)" -lt 8 ]; then owned=1; fi
bash "$TB" up 8 >/dev/null
cleanup() {
  [ "$owned" = 1 ] && bash "$TB" down >/dev/null 2>&1
  rm -rf "$SPARKRUN_CONFIG_DIR" "$SPARKRUN_SSH_CONTROL_DIR" /tmp/sr-bench-cold.*
}
trap cleanup EXIT
mapfile -t HOSTS < <(bash "$TB" hosts)
hosts() { local IFS=,; echo "${HOSTS[*]:0:$1}"; }
median() { python3 -c 'import json,sys; print("%.2f" % json.load(open(sys.argv[1]))["results"][0]["median"])' "$1"; }

"$SR" setup check --cluster testbed >"$OUT/check-8.txt" 2>&1 || {
  echo "setup check does not pass on the prepared cluster; see $OUT/check-8.txt" >&2
  exit 1
}
echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
echo
echo "## sparkrun setup check (median seconds)"
printf '| hosts | warm (%s runs) | cold (%s runs, new SSH connections) |\n|---|---|---|\n' "$RUNS" "$COLD_RUNS"
for n in 1 4 8; do
  cmd="$SR setup check --cluster testbed -H $(hosts "$n")"
  hyperfine -N --style none --warmup 1 --runs "$RUNS" --export-json "$OUT/warm-$n.json" "$cmd" >/dev/null
  hyperfine --style none --runs "$COLD_RUNS" --export-json "$OUT/cold-$n.json" \
    "SPARKRUN_SSH_CONTROL_DIR=\$(mktemp -d -p /tmp sr-bench-cold.XXXXXX) $cmd" >/dev/null
  printf '| %s | %s | %s |\n' "$n" "$(median "$OUT/warm-$n.json")" "$(median "$OUT/cold-$n.json")"
done
echo
echo "raw results: $OUT"
