"""Wrapper scripts that run INSIDE a container as its main process (package data in `sparkrun/shell/container/`).

Each is a real bash file (checked by `bash -n` and shellcheck in the tests) that takes every value as a positional
argument; a runtime passes it as `("bash", "-c", SCRIPT_TEXT, NAME, ARG…, "--", SERVE_ARGV…)`, so no value is ever
templated into bash. Reading package data is the only I/O a runtime does, and it is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib.resources import files

RAY_HEAD = "ray_head.sh"


@cache
def container_script(name: str) -> str:
    """The text of `sparkrun/shell/container/<name>`."""
    return files("sparkrun").joinpath("shell", "container", name).read_text(encoding="utf-8")


def wrap_command(script: str, name: str, args: Sequence[str], command: Sequence[str]) -> tuple[str, ...]:
    """argv that runs `script` with `args`, then `--`, then the wrapped `command` (which the script execs)."""
    return ("bash", "-c", container_script(script), name, *args, "--", *command)
