#!/usr/bin/env python3
"""A stand-in `docker` CLI for the lease tests: containers are lines in $FAKE_DOCKER/containers
("ID JOB NAME PORT STATE ROLE RECIPE"); the daemon is down while $FAKE_DOCKER/down exists. Every call is logged in
$FAKE_DOCKER/calls. It knows only what lease.sh, lease_watchdog.sh, launch.sh's lease part and stop.sh ask."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

STATE = Path(os.environ["FAKE_DOCKER"])


def rows() -> list[list[str]]:
    path = STATE / "containers"
    return [line.split() for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def save(items: list[list[str]]) -> None:
    tmp = STATE / "containers.tmp"
    tmp.write_text("".join(" ".join(r) + "\n" for r in items))
    tmp.replace(STATE / "containers")


def matching(args: list[str]) -> list[list[str]]:
    found = rows()
    if "--filter" in args:
        flt = args[args.index("--filter") + 1]
        if "=" in flt.removeprefix("label=sparkrun.job"):
            job = flt.split("=", 2)[2]
            found = [r for r in found if r[1] == job]
    return found


def ps(args: list[str]) -> int:
    found = matching(args)
    if "-q" in args or "-aq" in args:
        for r in found:
            print(r[0])
        return 0
    fmt = args[args.index("--format") + 1] if "--format" in args else "{{.Names}}"
    for r in found:
        line = fmt.replace('{{.Label "sparkrun.job"}}', r[1]).replace("{{.Names}}", r[2])
        line = line.replace('{{.Label "sparkrun.port"}}', r[3]).replace("{{.State}}", r[4])
        line = line.replace('{{.Label "sparkrun.role"}}', r[5]).replace('{{.Label "sparkrun.recipe"}}', r[6])
        print(line)
    return 0


def rm(args: list[str]) -> int:
    names = {a for a in args if not a.startswith("-")}
    before = rows()
    save([r for r in before if r[0] not in names and r[2] not in names])
    return 0


def pull(_args: list[str]) -> int:  # a slow registry
    time.sleep(float(os.environ.get("FAKE_PULL_SECONDS", "0")))
    return 0


COMMANDS = {
    "version": lambda _a: print("27.0.0") or 0,
    "ps": ps,
    "rm": rm,
    "stop": lambda _a: 0,
    "image": lambda _a: 1,  # inspect: nothing is present
    "container": lambda _a: 1,
    "pull": pull,
}


def main() -> int:
    args = sys.argv[1:]
    with open(STATE / "calls", "a") as log:
        log.write(" ".join(args) + "\n")
    if (STATE / "down").exists():
        print("Cannot connect to the Docker daemon at unix:///var/run/docker.sock.", file=sys.stderr)
        return 1
    command = COMMANDS.get(args[0] if args else "")
    if command is None:
        print(f"fake docker: unsupported: {args}", file=sys.stderr)
        return 2
    return int(command(args[1:]))


if __name__ == "__main__":
    sys.exit(main())
