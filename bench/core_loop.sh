#!/usr/bin/env bash
# bench/core_loop.sh - sparkrun's core loop on the local test cluster (root; public tools: hyperfine, GNU time).
#
#   1. `sparkrun status` on 1, 4 and 8 hosts, warm (SSH masters up), without and with +20 ms on every host's link:
#      median wall time (hyperfine).
#   2. Solo launch to ready: `sparkrun run … --no-follow --no-sync` (the core loop; bench/distribution.sh measures
#      the copies) against the same engine started by hand over plain ssh (`docker run` + poll /v1/models + one
#      streamed completion), so sparkrun's own overhead = the difference.
#   3. Sequential round trips per phase of a solo and a 2-host launch (from `sparkrun -v`).
#   4. `run --dry-run` against unreachable hosts: median wall time.
# Usage: sudo bench/core_loop.sh      (RUNS=10 by default). Leaves the testbed as it found it if one was up with
# >= 8 hosts; otherwise brings up 8 hosts and tears them down at the end. Raw hyperfine JSON: bench/results/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TB="$ROOT/scripts/testbed.sh"
SR="$ROOT/.venv/bin/sparkrun"
RUNS=${RUNS:-10}
IMAGE=sparkrun-test/engine:latest
OUT="$ROOT/bench/results/core-loop-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"

[ "$(id -u)" = 0 ] || { echo "bench/core_loop.sh: needs root" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }

export TB_STATE=${TB_STATE:-/var/lib/sparkrun-testbed}
mkdir -p "$TB_STATE"
exec 9>>"$TB_STATE/sessions.lock" # one session at a time on the shared cluster (tests/e2e/conftest.py)
if ! flock -n 9; then
  echo "waiting for the test cluster (another session holds $TB_STATE/sessions.lock)" >&2
  flock 9
fi
SPARKRUN_CONFIG_DIR=$(mktemp -d)
export SPARKRUN_CONFIG_DIR SPARKRUN_CACHE_DIR=$SPARKRUN_CONFIG_DIR/cache
owned=0
if [ "$(bash "$TB" running | wc -l)" -lt 8 ]; then owned=1; fi
bash "$TB" up 8 >/dev/null
cleanup() {
  set_delay off || true
  "$SR" -q stop --all --cluster testbed >/dev/null 2>&1 || true
  [ "$owned" = 1 ] && bash "$TB" down >/dev/null 2>&1
  rm -rf "$SPARKRUN_CONFIG_DIR"
}
trap cleanup EXIT
"$SR" -q stop --all --cluster testbed >/dev/null 2>&1 || true
mapfile -t HOSTS < <(bash "$TB" hosts)
hosts() { local IFS=,; echo "${HOSTS[*]:0:$1}"; }
set_delay() { local i; for i in 1 2 3 4 5 6 7 8; do bash "$TB" delay "h$i" "$1" >/dev/null 2>&1; done; }

median() {  # median seconds from a hyperfine JSON export
  python3 -c 'import json,sys; print("%.3f" % json.load(open(sys.argv[1]))["results"][0]["median"])' "$1"
}

echo "## status (median of $RUNS, warm)"
printf '| hosts | no delay (s) | +20 ms per host (s) |\n|---|---|---|\n'
for n in 1 4 8; do
  set_delay off
  hyperfine -N --style none --warmup 2 --runs "$RUNS" --export-json "$OUT/status-$n.json" \
    "$SR status --cluster testbed -H $(hosts "$n")" >/dev/null
  set_delay 20
  hyperfine -N --style none --warmup 2 --runs "$RUNS" --export-json "$OUT/status-$n-delay.json" \
    "$SR status --cluster testbed -H $(hosts "$n")" >/dev/null
  printf '| %s | %s | %s |\n' "$n" "$(median "$OUT/status-$n.json")" "$(median "$OUT/status-$n-delay.json")"
done
set_delay off

echo
echo "## solo launch to ready (median of $RUNS)"
head=${HOSTS[0]}
printf '%s\n' \
  'docker run -d --name bench_by_hand --network host --gpus all sparkrun-test/engine:latest vllm serve Qwen/Qwen3-1.7B --port 8000 >/dev/null' \
  'until curl -sf -o /dev/null http://127.0.0.1:8000/v1/models; do sleep 0.1; done' \
  'curl -sfN http://127.0.0.1:8000/v1/chat/completions -H "Content-Type: application/json" -d "{\"model\":\"Qwen/Qwen3-1.7B\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true,\"max_tokens\":4}" >/dev/null' \
  >"$OUT/by_hand.sh"
ssh_tb="ssh -F /var/lib/sparkrun-testbed/ssh_config root@$head"
# Both through the shell (hyperfine subtracts its start-up), the engine and its 1 s stand-in start-up the same.
hyperfine --style none --runs "$RUNS" --export-json "$OUT/launch-by-hand.json" \
  --prepare "$ssh_tb docker rm -f bench_by_hand >/dev/null 2>&1 || true" \
  --cleanup "$ssh_tb docker rm -f bench_by_hand >/dev/null" \
  "$ssh_tb bash -s <$OUT/by_hand.sh" >/dev/null
hyperfine --style none --runs "$RUNS" --export-json "$OUT/launch-sparkrun.json" \
  --prepare "$SR -q stop --all --cluster testbed -H $head" \
  --cleanup "$SR -q stop --all --cluster testbed -H $head" \
  "$SR -q run qwen3-1.7b-vllm --cluster testbed -H $head --image $IMAGE --no-follow --no-sync" >/dev/null
hand=$(median "$OUT/launch-by-hand.json")
spark=$(median "$OUT/launch-sparkrun.json")
printf '| engine started by hand over ssh (s) | sparkrun run to ready (s) | sparkrun overhead (s) |\n|---|---|---|\n'
printf '| %s | %s | %s |\n' "$hand" "$spark" "$(python3 -c "print('%.3f' % ($spark - $hand))")"

echo
echo "## sequential round trips per launch (from sparkrun -v)"
for tp in 1 2; do
  log="$OUT/run-tp$tp.log"
  "$SR" -v run qwen3-1.7b-vllm --cluster testbed --tp "$tp" --image "$IMAGE" --no-follow --no-sync >/dev/null 2>"$log"
  "$SR" -q stop --all --cluster testbed >/dev/null
  python3 - "$log" "$tp" <<'PY'
import re, sys
# A phase = script runs that can overlap: one script name, or one "starting …" launch group.
phases: list[list[str]] = []
for line in open(sys.argv[1]):
    if line.startswith("starting "):
        phases.append(["launch " + line.split(" ", 1)[1].strip(), ""])
        continue
    m = re.search(r"transport: (\S+): (\w+): ([\d.]+)s", line)
    if m and m.group(2) != "launch" and (not phases or phases[-1][1] != m.group(2)):
        phases.append([m.group(2), m.group(2)])
print(f"tp={sys.argv[2]}: " + " -> ".join(p[0] for p in phases) + f"  ({len(phases)} sequential round trips)")
PY
done

echo
echo "## run --dry-run against unreachable hosts (median of $RUNS)"
hyperfine -N --style none --warmup 2 --runs "$RUNS" --export-json "$OUT/dry-run.json" \
  "$SR run qwen3-1.7b-vllm -H 10.213.0.201,10.213.0.202 --tp 2 --dry-run" >/dev/null
echo "median $(median "$OUT/dry-run.json") s"
echo
echo "raw: $OUT"
