#!/usr/bin/env bash
# The README's main job on an embedded default, on this machine: bring up a local 2-host test cluster, run the
# bundled recipe qwen3-1.7b-vllm on it (a stand-in engine image, no GPU or model download needed) until it serves,
# show status and logs, run it again across both hosts, stop everything and tear the cluster down.
# Needs root on Debian/Ubuntu (network namespaces, a dockerd per simulated host). Without root it prints the
# launch plan (`--dry-run`), which opens no connection.
set -euo pipefail
cd "$(dirname "$0")/.."

SPARKRUN=${SPARKRUN:-.venv/bin/sparkrun}
IMAGE=sparkrun-test/engine:latest
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "demo: not root, so no local test cluster; showing the plan for two hosts instead" >&2
  say sparkrun run qwen3-1.7b-vllm -H 10.213.0.11,10.213.0.12 --tp 2 --dry-run
  "$SPARKRUN" run qwen3-1.7b-vllm -H 10.213.0.11,10.213.0.12 --tp 2 --dry-run
  exit 0
fi

# A private sparkrun config for the demo, so the user's own stays untouched.
SPARKRUN_CONFIG_DIR=$(mktemp -d /tmp/sparkrun-demo.XXXXXX)
export SPARKRUN_CONFIG_DIR
export SPARKRUN_CACHE_DIR=$SPARKRUN_CONFIG_DIR/cache
cleanup() {
  "$SPARKRUN" -q stop --all --cluster testbed >/dev/null 2>&1 || true
  bash scripts/testbed.sh down >/dev/null 2>&1 || true
  rm -rf "$SPARKRUN_CONFIG_DIR"
}
trap cleanup EXIT

say scripts/testbed.sh up 2
bash scripts/testbed.sh up 2

say sparkrun run qwen3-1.7b-vllm --cluster testbed --image $IMAGE --dry-run
"$SPARKRUN" run qwen3-1.7b-vllm --cluster testbed --image "$IMAGE" --dry-run

say sparkrun run qwen3-1.7b-vllm --cluster testbed --image $IMAGE --no-follow
"$SPARKRUN" run qwen3-1.7b-vllm --cluster testbed --image "$IMAGE" --no-follow
job=$("$SPARKRUN" status --cluster testbed --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["job"])')

say curl http://10.213.0.11:8000/v1/models
curl -s http://10.213.0.11:8000/v1/models
echo

say sparkrun status --cluster testbed
"$SPARKRUN" status --cluster testbed

say sparkrun logs "$job" --cluster testbed -n 5
"$SPARKRUN" logs "$job" --cluster testbed -n 5

say sparkrun stop "$job" --cluster testbed
"$SPARKRUN" stop "$job" --cluster testbed

say sparkrun run qwen3-1.7b-vllm --cluster testbed --tp 2 --image $IMAGE --no-follow
"$SPARKRUN" run qwen3-1.7b-vllm --cluster testbed --tp 2 --image "$IMAGE" --no-follow

say sparkrun status --cluster testbed
"$SPARKRUN" status --cluster testbed

say sparkrun stop --all --cluster testbed
"$SPARKRUN" stop --all --cluster testbed

say scripts/testbed.sh down
bash scripts/testbed.sh down
trap - EXIT
rm -rf "$SPARKRUN_CONFIG_DIR"
echo "demo: done"
