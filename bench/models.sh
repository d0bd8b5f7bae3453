#!/usr/bin/env bash
# bench/models.sh - model download once, against the Hub stand-in on loopback (no network needed, any user).
#
#   1. cold download of test-org/bench-llama (~1.1 GB, 3 safetensors shards + config/tokenizer) into an empty hub
#      cache with huggingface_hub (sparkrun.models.download): wall time, MB/s, peak RSS (GNU time);
#   2. the same call again (everything cached): median wall time (hyperfine) - it must move 0 bytes;
#   3. checking the cache: check_cache(verify=True) in Python and model_check.sh with VERIFY=1 in bash (sha256).
# Usage: bench/models.sh [DATA_DIR]   (generated model files are kept in DATA_DIR, default /var/tmp/sparkrun-hubstub)
#   RUNS=10 by default. Needs hyperfine and GNU time (apt-get install hyperfine time).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY="$ROOT/.venv/bin/python"
RUNS=${RUNS:-10}
DATA=${1:-/var/tmp/sparkrun-hubstub}
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "needs GNU time (apt-get install time)" >&2; exit 2; }

WORK=$(mktemp -d)
export SPARKRUN_CACHE_DIR="$WORK/sparkrun-cache" HF_HUB_DISABLE_PROGRESS_BARS=1
unset HF_HUB_OFFLINE HF_TOKEN
PYTHONPATH="$ROOT/tests" "$PY" -m hubstub --bind 127.0.0.1 --data "$DATA" --bench >"$WORK/hub.json" &
hub_pid=$!
cleanup() { kill "$hub_pid" 2>/dev/null || true; wait "$hub_pid" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
for _ in $(seq 1 600); do [ -s "$WORK/hub.json" ] && break; sleep 0.5; done  # first run generates ~1.1 GB
HF_ENDPOINT=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["endpoint"])' "$WORK/hub.json")
export HF_ENDPOINT
run() { PYTHONPATH="$ROOT/src" "$PY" "$ROOT/bench/model_download.py" --repo test-org/bench-llama --hub-dir "$WORK/hub" "$@"; }

echo "## cold download (stand-in on loopback: measures sparkrun + huggingface_hub, not a network)"
/usr/bin/time -f '%e s wall, %M KB peak RSS' -o "$WORK/time.txt" env PYTHONPATH="$ROOT/src" "$PY" \
  "$ROOT/bench/model_download.py" --repo test-org/bench-llama --hub-dir "$WORK/hub" | tee "$WORK/cold.json"
cat "$WORK/time.txt"

echo
echo "## second download, everything cached (median of $RUNS)"
run | tee "$WORK/warm.json"
hyperfine -N --style none --warmup 1 --runs "$RUNS" --export-json "$WORK/warm-hf.json" \
  "env PYTHONPATH=$ROOT/src $PY $ROOT/bench/model_download.py --repo test-org/bench-llama --hub-dir $WORK/hub" >/dev/null
"$PY" -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("median %.3f s" % r["median"])' \
  "$WORK/warm-hf.json"

echo
echo "## cache check with checksums"
run --check-only
PYTHONPATH="$ROOT/src" "$PY" - "$WORK/hub" >"$WORK/check.sh" <<'PYEOF'
import sys
from pathlib import Path
from sparkrun.models.check import check_script_params
from sparkrun.models.manifest import ModelRequest, cached_manifest
from sparkrun.shell import render_script
manifest = cached_manifest(ModelRequest("test-org/bench-llama", "vllm-distributed"))
print(render_script("model_check", check_script_params(manifest, sys.argv[1], verify=True)).text)
PYEOF
/usr/bin/time -f 'model_check.sh VERIFY=1: %e s wall' bash "$WORK/check.sh" | grep -c 'model-file present' |
  sed 's/$/ files present (bash)/'
