#!/usr/bin/env bash
# Median wall time and peak RSS of `sparkrun --help`, `sparkrun --version` and a shell completion of recipe names.
#
# Usage: bench/cli_startup.sh [SPARKRUN_BIN] [OTHER_BIN]
#   SPARKRUN_BIN  default: .venv/bin/sparkrun
#   OTHER_BIN     optional second sparkrun (e.g. the older tool) measured the same way for comparison
# Needs: hyperfine (Debian package `hyperfine`) and GNU time (/usr/bin/time, package `time`).
# Targets on a 2-core machine: median `--help` and `--version` <= 0.07 s, completion <= 0.15 s.
set -euo pipefail

bin=${1:-.venv/bin/sparkrun}
other=${2:-}
runs=${RUNS:-20}

command -v hyperfine >/dev/null || { echo "hyperfine not installed (apt-get install hyperfine)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time not installed (apt-get install time)" >&2; exit 2; }

median_ms() {  # median wall time in ms of "$@" over $runs runs
  local json
  json=$(mktemp)
  # one command line, quoted word by word: hyperfine -N splits it with shell quoting rules (no shell runs)
  hyperfine -N --style none --warmup 3 --runs "$runs" --export-json "$json" -- "$(printf '%q ' "$@")" >/dev/null 2>&1
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.1f" % (r["median"] * 1000))' "$json"
  rm -f "$json"
}

peak_rss_mb() {  # max RSS in MiB over 5 runs
  local best=0 kb i
  for i in 1 2 3 4 5; do
    kb=$( /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -n1 )
    (( kb > best )) && best=$kb
    : "$i"
  done
  awk -v kb="$best" 'BEGIN { printf "%.1f", kb / 1024 }'
}

printf '%-40s %-10s %12s %14s\n' BINARY COMMAND "MEDIAN (ms)" "PEAK RSS (MiB)"
for b in "$bin" ${other:+"$other"}; do
  for arg in --help --version; do
    printf '%-40s %-10s %12s %14s\n' "$b" "$arg" "$(median_ms "$b" "$arg")" "$(peak_rss_mb "$b" "$arg")"
  done
done
# TAB after `sparkrun run qwen` (recipe names from the bundled dir, ./recipes and downloaded registries).
tab=(env _SPARKRUN_COMPLETE=bash_complete "COMP_WORDS=sparkrun run qwen" COMP_CWORD=2 "$bin")
printf '%-40s %-10s %12s %14s\n' "$bin" "<TAB>" "$(median_ms "${tab[@]}")" "$(peak_rss_mb "${tab[@]}")"
