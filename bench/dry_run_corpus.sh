#!/usr/bin/env bash
# bench/dry_run_corpus.sh DIR [BIN]: `run RECIPE --dry-run` wall time for every recipe under DIR (e.g. the public
# corpus), against four unreachable hosts (a dry-run must not connect, so nothing answers and nothing waits).
# Prints ok/failed counts and the median / 90th percentile / max seconds per recipe (GNU time, one run each after
# a warm-up). BIN defaults to .venv/bin/sparkrun; pass another sparkrun to compare.
set -euo pipefail
dir=${1:?usage: bench/dry_run_corpus.sh DIR [BIN]}
bin=${2:-.venv/bin/sparkrun}
hosts=192.0.2.11,192.0.2.12,192.0.2.13,192.0.2.14  # TEST-NET-1: never routed to a real machine
extra=()
[ -n "${DRY_RUN_EXTRA:-}" ] && read -r -a extra <<<"$DRY_RUN_EXTRA"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export SPARKRUN_CONFIG_DIR=$tmp/config SPARKRUN_CACHE_DIR=$tmp/cache

# The recipe files (registry manifests, benchmark profiles and catalogues left out), as `check-corpus.sh` sees them.
mapfile -t recipes < <("$(dirname "$0")/../.venv/bin/python" -c '
import sys
from pathlib import Path
from sparkrun.recipes.corpus import survey
for path, _registry in survey(Path(sys.argv[1])).recipes:
    print(path)' "$dir")
"$bin" run "${recipes[0]}" -H "$hosts" --dry-run "${extra[@]}" >/dev/null 2>&1 || true  # warm-up
ok=0 failed=0
: >"$tmp/times"
for r in "${recipes[@]}"; do
  if /usr/bin/time -f '%e' -o "$tmp/t" "$bin" run "$r" -H "$hosts" --dry-run "${extra[@]}" >/dev/null 2>"$tmp/err"; then
    ok=$((ok + 1))
  else
    failed=$((failed + 1))
    printf 'failed: %s: %s\n' "${r#"$dir"/}" "$(grep -m1 -E '^(error|Error)' "$tmp/err" || tail -n1 "$tmp/err")"
  fi
  tail -n1 "$tmp/t" >>"$tmp/times"
done
python3 - "$tmp/times" "$ok" "$failed" <<'PY'
import statistics, sys
t = sorted(float(x) for x in open(sys.argv[1]) if x.strip())
p90 = t[min(len(t) - 1, int(0.9 * len(t)))]
print(f"{len(t)} recipes: {sys.argv[2]} planned, {sys.argv[3]} failed; "
      f"seconds per recipe: median {statistics.median(t):.3f}, p90 {p90:.3f}, max {t[-1]:.3f}")
PY
