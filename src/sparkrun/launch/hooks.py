"""Recipe hooks and mods, as plan data.

- `pre_exec`: shell commands run in every container (via `docker exec`) before the engine starts. The container then
  starts held by `shell/container/gate.sh`, which becomes the engine once the hooks are done.
- `mods`: directories with a `run.sh` (eugr style), copied into `/workspace/mods/<name>` and run before `pre_exec`.
- `post_exec`: shell commands run in the head container once the job is ready.
- `post_commands`: shell commands run on the control machine once the job is ready.

Entries are strings or `{command: ..., timeout: seconds}`; placeholders (`{head_ip}`, `{port}`, `{container_name}`, …)
are filled per container by the recipe layer's renderer. Running any of them needs a trusted recipe (`--trust`).
"""

from __future__ import annotations

import io
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from sparkrun.errors import RecipeError
from sparkrun.shell import script_text

DEFAULT_HOOK_TIMEOUT = 3600
MODS_DIR = "/workspace/mods"
HOOK_STEPS = ("pre_exec", "post_exec", "post_commands", "mod:", "copy")

Renderer = Callable[[str, Mapping[str, Any]], str]


@dataclass(frozen=True)
class Hook:
    label: str  # e.g. "pre_exec[0]", "mod:fix-glm"; names the step in errors
    command: str  # shell text (rendered)
    timeout: int = DEFAULT_HOOK_TIMEOUT


@dataclass(frozen=True)
class Copy:
    """A local directory sent into each gated container: a tar stream on the launch script's stdin, unpacked with
    `docker cp - CONTAINER:DEST`."""

    label: str
    dest: str
    tar: bytes = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.tar)


@dataclass(frozen=True)
class HookSet:
    """A recipe's hooks, unrendered. Empty by default."""

    pre_exec: tuple[Any, ...] = ()
    post_exec: tuple[Any, ...] = ()
    post_commands: tuple[Any, ...] = ()
    mods: tuple[Copy, ...] = ()
    stop_after_post: bool = False

    @property
    def gated(self) -> bool:
        return bool(self.pre_exec or self.mods)


def _entry(kind: str, index: int, raw: Any) -> tuple[str, int]:
    label = f"{kind}[{index}]"
    if isinstance(raw, str):
        return raw, DEFAULT_HOOK_TIMEOUT
    if isinstance(raw, Mapping) and isinstance(raw.get("command"), str):
        try:
            timeout = int(raw.get("timeout", DEFAULT_HOOK_TIMEOUT))
        except (TypeError, ValueError):
            raise RecipeError(f"{label}.timeout: expected seconds, got {raw.get('timeout')!r}") from None
        return raw["command"], timeout
    raise RecipeError(
        f"{label}: expected a shell command or {{command, timeout}}, got {type(raw).__name__}",
        hint="`copy:` entries are not supported; use `mods:` to send files into the container",
    )


def render_hooks(
    kind: str, entries: Sequence[Any], render: Renderer | None, values: Mapping[str, Any]
) -> tuple[Hook, ...]:
    hooks = []
    for index, raw in enumerate(entries):
        text, timeout = _entry(kind, index, raw)
        hooks.append(Hook(f"{kind}[{index}]", render(text, values) if render else text, timeout))
    return tuple(hooks)


def mod_hook(name: str) -> Hook:
    where = f"{MODS_DIR}/{name}"
    return Hook(f"mod:{name}", f"export WORKSPACE_DIR=$PWD && cd {shlex.quote(where)} && chmod +x run.sh && ./run.sh")


def pack_directory(path: Path, label: str) -> Copy:
    """Tar `path` (as `<name>/…`) for `docker cp - CONTAINER:/workspace/mods`."""
    import tarfile  # deferred: only recipes with mods need it

    if not (path / "run.sh").is_file():
        raise RecipeError(f"mod {path}: no run.sh in it")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(path, arcname=path.name)
    return Copy(label=label, dest=MODS_DIR, tar=buf.getvalue())


def pack_mods(paths: Sequence[Path]) -> tuple[Copy, ...]:
    return tuple(pack_directory(p, f"mod:{p.name}") for p in paths)


@cache
def _gate_script() -> str:
    """gate.sh without its comment lines (they would only lengthen every `docker run` line)."""
    text = script_text("container/gate.sh")
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def gate_argv(argv: Sequence[str]) -> tuple[str, ...]:
    """The container's main process when pre hooks must run first: gate.sh holds the engine until released."""
    return ("bash", "-c", _gate_script(), "sparkrun-gate", *argv)
