"""The bash that sparkrun runs on hosts (package data: `*.sh` here, `container/*.sh` run inside containers), and
how a script is put together: a quoted preamble of values, `lib.sh` (and `chain_lib.sh` for the two ends of a copy
chain), then the script body.

Values never get formatted into bash text: each becomes `readonly NAME='quoted'` (or a bash array) via `shlex.quote`,
and the body (a real `.sh` file that passes `bash -n` and shellcheck) only refers to `$NAME`. That closes the quoting
bug class of string-templated bash. Bytes a script reads (secrets, tar streams) travel as its stdin, not as values.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Final

ParamValue = str | int | float | bool | None | Sequence[str]

_NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
# The scripts of a copy chain (sender and hops, images and models) share `chain_lib.sh`, put after `lib.sh`.
CHAIN_SCRIPTS: Final = frozenset({"image_send", "image_recv", "model_send", "model_recv"})


@dataclass(frozen=True)
class Script:
    """A complete bash script; `name` is what logs and errors call it. `stdin` is data the script reads."""

    name: str
    text: str
    stdin: bytes = field(default=b"", repr=False)

    def framed(self) -> bytes:
        return self.text.encode("utf-8")


@cache
def script_text(name: str) -> str:
    """The text of a packaged script without its shebang line, e.g. `script_text("launch.sh")`."""
    text = resources.files("sparkrun.shell").joinpath(name).read_text(encoding="utf-8")
    return text.split("\n", 1)[1] if text.startswith("#!") else text


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


def render_script(
    name: str, params: Mapping[str, ParamValue] | None = None, *, stdin: bytes = b"", events_to_stderr: bool = False
) -> Script:
    """`render_script("launch", {"IMAGE": "x"})` -> preamble + lib.sh + launch.sh, as one `Script` (the
    `CHAIN_SCRIPTS` with chain_lib.sh between lib.sh and the body).

    `events_to_stderr`: the script's stdout is data (a byte stream to pipe elsewhere), so its `@sr` events go to
    stderr instead."""
    values = dict(params or {})
    if events_to_stderr:
        values["SR_EVENT_FD"] = "2"
    preamble = "\n".join(assignment(k, v) for k, v in values.items())
    text = "\n".join(
        [
            "#!/usr/bin/env bash",
            f"# sparkrun {name}.sh",
            "set -uo pipefail",
            preamble,
            script_text("lib.sh"),
            *([script_text("chain_lib.sh")] if name in CHAIN_SCRIPTS else []),
            script_text(f"{name}.sh"),
        ]
    )
    return Script(name=name, text=text + "\n", stdin=stdin)
