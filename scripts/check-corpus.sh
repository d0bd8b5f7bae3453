#!/usr/bin/env bash
# Validate and render every recipe under DIR and print a report: recipes found, files skipped (registry manifests,
# benchmark profiles, other YAML) with the reason, issues by kind, the median time per recipe, and what failed.
#
# Usage: scripts/check-corpus.sh DIR [--json]
# Exit status: 0 when every recipe validates without errors and renders its serve command, except recipes whose only
# error is a runtime no installed plugin provides; 1 otherwise; 2 for bad usage.
set -euo pipefail

if [[ $# -lt 1 || ! -d "$1" ]]; then
  echo "usage: $0 DIR [--json]" >&2
  exit 2
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-}
if [[ -z "$python" ]]; then
  if [[ -x "$here/.venv/bin/python" ]]; then
    python="$here/.venv/bin/python"
  else
    python=python3
  fi
fi

exec "$python" -m sparkrun.recipes.corpus "$@"
