#!/usr/bin/env python3
"""Write the version from versions.yaml into every file that carries it; `--check` fails on drift.

Targets: pyproject.toml (`version = "…"` in [project]), src/sparkrun/__init__.py (`__version__ = "…"`),
sparkrun-cc-plugin/.claude-plugin/plugin.json (`"version"`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _sub_pyproject(text: str, version: str) -> str:
    # Only the first `version = ` line, which is the [project] table's.
    return re.sub(r'(?m)^version = "[^"]*"', f'version = "{version}"', text, count=1)


def _sub_init(text: str, version: str) -> str:
    return re.sub(r'(?m)^__version__ = "[^"]*"', f'__version__ = "{version}"', text, count=1)


def _sub_plugin_json(text: str, version: str) -> str:
    data = json.loads(text)
    data["version"] = version
    return json.dumps(data, indent=2) + "\n"


TARGETS: dict[str, Callable[[str, str], str]] = {
    "pyproject.toml": _sub_pyproject,
    "src/sparkrun/__init__.py": _sub_init,
    "sparkrun-cc-plugin/.claude-plugin/plugin.json": _sub_plugin_json,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if any file disagrees with versions.yaml")
    args = parser.parse_args()
    version = str(yaml.safe_load((ROOT / "versions.yaml").read_text())["sparkrun"])
    drift = []
    for rel, substitute in TARGETS.items():
        path = ROOT / rel
        old = path.read_text()
        new = substitute(old, version)
        if new == old:
            continue
        if args.check:
            drift.append(rel)
        else:
            path.write_text(new)
            print(f"updated {rel} -> {version}")
    if drift:
        print(f"version drift from versions.yaml ({version}): {', '.join(drift)}", file=sys.stderr)
        print("fix: python scripts/update-versions.py", file=sys.stderr)
        return 1
    if args.check:
        print(f"versions consistent: {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
