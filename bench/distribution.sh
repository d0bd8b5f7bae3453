#!/usr/bin/env bash
# bench/distribution.sh - pipelined distribution on the local test cluster: a ~1.1 GB model and a ~200 MB image to
# 1, 2, 4 and 8 hosts, every link (each host's and this machine's) shaped to the same rate with the testbed's
# `shape` (tbf on both ends). The wall time of `sparkrun sync` is compared with the one-link time (bytes / rate): a
# chain costs about one link-time whatever the host count, a star from one source N link-times. GNU time reports
# the sparkrun process's peak RSS (the data never passes through Python buffers).
#
#   model: test-org/bench-llama from the Hub stand-in, already in this machine's Hugging Face cache (`--download
#          control` once, unshaped), then synced to hosts 1..N with their caches emptied: this machine -> h1 -> ... hN
#   image: a 200 MB image (the engine image + 200 MB of random bytes) on host 9 only; synced to hosts 1..N with the
#          image removed there: h9 -> h1 -> ... hN (docker save | tee | docker load on every hop)
#
# Usage: sudo bench/distribution.sh            RATE=400mbit (default) COUNTS="1 2 4 8" RUNS=1
# Takes the testbed's session lock (like the e2e tests); brings up 9 hosts and tears them down at the end when it
# brought them up. Keeps raw results in bench/results/distribution-<date>/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TB="$ROOT/scripts/testbed.sh"
PY="$ROOT/.venv/bin/python"
RATE=${RATE:-400mbit}
read -r -a COUNTS <<<"${COUNTS:-1 2 4 8}"
RUNS=${RUNS:-1}
DATA=${DATA:-/var/tmp/sparkrun-hubstub}
export TB_STATE=${TB_STATE:-/var/lib/sparkrun-testbed}
OUT="$ROOT/bench/results/distribution-$(date +%Y%m%d-%H%M%S)"
IMAGE=bench/distribution:200mb
SOURCE_HOST=9

[ "$(id -u)" = 0 ] || { echo "bench/distribution.sh: needs root" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench/distribution.sh: needs GNU time (apt-get install time)" >&2; exit 1; }
mkdir -p "$OUT" "$TB_STATE"

exec 8>>"$TB_STATE/sessions.lock" # one test session at a time on the cluster (tests/e2e/conftest.py)
flock -x 8
exec 7>>"$TB_STATE/users.lock"
flock -s 7
was_up=$(bash "$TB" running | wc -l)

WORK=$(mktemp -d /var/tmp/sparkrun-bench.XXXXXX)
export HOME="$WORK/home" SPARKRUN_CONFIG_DIR="$WORK/config" SPARKRUN_CACHE_DIR="$WORK/cache"
export HF_HUB_CACHE="$WORK/control-hub" HF_HUB_DISABLE_PROGRESS_BARS=1
unset HF_HUB_OFFLINE HF_TOKEN HTTP_PROXY HTTPS_PROXY http_proxy https_proxy
mkdir -p "$HOME/.ssh"
echo "Include $TB_STATE/ssh_config" >"$HOME/.ssh/config"
hub_pid=""
cleanup() {
  set +e
  [ -n "$hub_pid" ] && kill "$hub_pid" 2>/dev/null && wait "$hub_pid" 2>/dev/null
  for ((i = 1; i <= SOURCE_HOST; i++)); do bash "$TB" shape "h$i" off >/dev/null 2>&1; done
  bash "$TB" shape control off >/dev/null 2>&1
  ((was_up > 0)) || bash "$TB" down --force >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT

bash "$TB" up "$SOURCE_HOST" >"$OUT/up.log" 2>&1
bash "$TB" cluster-file "$SPARKRUN_CONFIG_DIR" >/dev/null
PYTHONPATH="$ROOT/tests" "$PY" -m hubstub --bind 10.213.0.1 --data "$DATA" --bench >"$WORK/hub.json" &
hub_pid=$!
for _ in $(seq 1 600); do [ -s "$WORK/hub.json" ] && break; sleep 0.5; done # the first run generates ~1.1 GB
HF_ENDPOINT=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["endpoint"])' "$WORK/hub.json")
export HF_ENDPOINT

ip() { echo "10.213.0.$((10 + $1))"; }
hosts() { # hosts 1..N, comma-separated
  local n=$1 i out=()
  for ((i = 1; i <= n; i++)); do out+=("$(ip "$i")"); done
  (IFS=,; echo "${out[*]}")
}
hdocker() { DOCKER_HOST="unix://$TB_STATE/h$1/run/docker.sock" docker "${@:2}"; }
sparkrun() { "$PY" -m sparkrun "$@"; }
shape_all() {
  local i
  for ((i = 1; i <= SOURCE_HOST; i++)); do bash "$TB" shape "h$i" "$1" >/dev/null; done
  bash "$TB" shape control "$1" >/dev/null
}

cat >"$WORK/model.yaml" <<'EOF'
recipe_version: "2"
model: test-org/bench-llama
runtime: vllm
container: sparkrun-test/engine:latest
EOF
cat >"$WORK/image.yaml" <<EOF
recipe_version: "2"
model: /models/none
runtime: vllm
container: $IMAGE
EOF

echo "preparing: the model in this machine's cache, a 200 MB image on host $SOURCE_HOST" >&2
sparkrun sync "$WORK/model.yaml" --cluster testbed -H "$(ip 1)" --download control >/dev/null 2>"$OUT/prepare.log"
hdocker "$SOURCE_HOST" run --name bench_fill --entrypoint sh sparkrun-test/engine:latest \
  -c 'head -c 200000000 /dev/urandom >/blob' >/dev/null
hdocker "$SOURCE_HOST" commit bench_fill "$IMAGE" >/dev/null
hdocker "$SOURCE_HOST" rm bench_fill >/dev/null
MODEL_BYTES=$(du -sbL "$HF_HUB_CACHE"/models--test-org--bench-llama/snapshots/* | awk '{ print $1 }')
IMAGE_BYTES=$(hdocker "$SOURCE_HOST" save "$IMAGE" | wc -c)

timed() { # NAME ARGS...: run sparkrun under GNU time; prints "wall_seconds peak_rss_kb" (CPU samples: $OUT/NAME.top)
  local name=$1 sampler
  shift
  (while sleep 5; do top -b -n 1 -w 200 | head -n 22; done) >"$OUT/$name.top" 2>&1 &
  sampler=$!
  /usr/bin/time -f '%e %M' -o "$OUT/$name.time" "$PY" -m sparkrun "$@" >"$OUT/$name.json" 2>"$OUT/$name.log" ||
    { kill "$sampler"; echo "bench/distribution.sh: $name failed, see $OUT/$name.log" >&2; exit 1; }
  kill "$sampler"
  cat "$OUT/$name.time"
}

shape_all "$RATE"
BPS=$("$PY" -c 'import re,sys; v,u=re.fullmatch(r"([\d.]+)([kmg]?)bit", sys.argv[1]).groups(); print(int(float(v)*{"":1,"k":1e3,"m":1e6,"g":1e9}[u]/8))' "$RATE")
{
  echo "# $(nproc) cores, links shaped to $RATE ($((BPS / 1000000)) MB/s) each, $(date -u +%Y-%m-%d)"
  echo
  echo "| what | hosts | bytes | one-link time | wall time | wall / one-link | peak RSS (sparkrun) |"
  echo "|---|---|---|---|---|---|---|"
} | tee "$OUT/table.md"
row() { # WHAT N BYTES WALL RSS_KB
  "$PY" -c 'import sys; w,n,b,t,r,bps=sys.argv[1:]; one=int(b)/int(bps)
print(f"| {w} | {n} | {int(b)/1e6:.0f} MB | {one:.1f} s | {float(t):.1f} s | {float(t)/one:.2f}x | {int(r)/1024:.0f} MB |")' \
    "$1" "$2" "$3" "$4" "$5" "$BPS" | tee -a "$OUT/table.md"
}
for n in "${COUNTS[@]}"; do
  for ((run = 1; run <= RUNS; run++)); do
    for ((i = 1; i <= n; i++)); do bash "$TB" exec "h$i" "rm -rf /root/.cache/huggingface" >/dev/null; done
    read -r wall rss < <(timed "model-$n-$run" sync "$WORK/model.yaml" --cluster testbed -H "$(hosts "$n")" \
      --download control --json)
    row "model" "$n" "$MODEL_BYTES" "$wall" "$rss"
    for ((i = 1; i <= n; i++)); do hdocker "$i" rmi -f "$IMAGE" >/dev/null 2>&1 || true; done
    read -r wall rss < <(timed "image-$n-$run" sync "$WORK/image.yaml" --cluster testbed \
      -H "$(ip "$SOURCE_HOST"),$(hosts "$n")" --json)
    row "image" "$n" "$IMAGE_BYTES" "$wall" "$rss"
  done
done
echo
echo "raw results: $OUT"
