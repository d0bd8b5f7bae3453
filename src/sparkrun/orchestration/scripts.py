"""Build the scripts sent to hosts: a quoted preamble of values, `lib.sh`, then the script body.

Values never get formatted into bash text: each becomes `readonly NAME='quoted'` (or a bash array) via `shlex.quote`,
and the body (a real `.sh` file that passes `bash -n` and shellcheck) only refers to `$NAME`. That closes the
quoting bug class of string-templated bash.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources

from sparkrun.orchestration.transport import Script

ParamValue = str | int | float | bool | None | Sequence[str]

_NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")


@cache
def script_text(name: str) -> str:
    """The text of a packaged script, e.g. `script_text("launch.sh")`."""
    return resources.files("sparkrun.shell").joinpath(name).read_text(encoding="utf-8")


def assignment(name: str, value: ParamValue) -> str:
    if not _NAME_RE.match(name):
        raise ValueError(f"invalid script parameter name {name!r}")
    if value is None:
        return f"readonly {name}=''"
    if isinstance(value, bool):
        return f"readonly {name}={1 if value else 0}"
    if isinstance(value, int | float | str):
        return f"readonly {name}={shlex.quote(str(value))}"
    items = " ".join(shlex.quote(str(v)) for v in value)
    return f"{name}=({items})\nreadonly {name}"


def render_script(name: str, params: Mapping[str, ParamValue] | None = None) -> Script:
    """`render_script("launch", {"IMAGE": "x"})` → preamble + lib.sh + launch.sh."""
    preamble = "\n".join(assignment(k, v) for k, v in (params or {}).items())
    text = "\n".join(
        [
            "#!/usr/bin/env bash",
            f"# sparkrun {name}.sh",
            "set -uo pipefail",
            preamble,
            script_text("lib.sh"),
            script_text(f"{name}.sh"),
        ]
    )
    return Script(name=name, text=text + "\n")
