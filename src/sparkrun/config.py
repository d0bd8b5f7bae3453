"""Where sparkrun keeps its files, and the user's config file.

Nothing here touches the disk at import time; directories are created by the code that writes into them.

- config dir: `$SPARKRUN_CONFIG_DIR`, else `$XDG_CONFIG_HOME/sparkrun`, else `~/.config/sparkrun`
  (holds `config.yaml`, `clusters/*.yaml`, `registries.yaml`)
- cache dir: `$SPARKRUN_CACHE_DIR`, else `$XDG_CACHE_HOME/sparkrun`, else `~/.cache/sparkrun`
  (holds `jobs/`, `pending/`, `registries/`, fetched recipes)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sparkrun.errors import ConfigError


def _xdg(env_override: str, xdg_var: str, fallback: str) -> Path:
    explicit = os.environ.get(env_override)
    if explicit:
        return Path(os.path.expanduser(explicit))
    base = os.environ.get(xdg_var)
    if base:
        return Path(os.path.expanduser(base)) / "sparkrun"
    return Path.home() / fallback / "sparkrun"


def config_dir() -> Path:
    return _xdg("SPARKRUN_CONFIG_DIR", "XDG_CONFIG_HOME", ".config")


def cache_dir() -> Path:
    return _xdg("SPARKRUN_CACHE_DIR", "XDG_CACHE_HOME", ".cache")


def ssh_control_dir() -> Path:
    """Private directory for OpenSSH ControlMaster sockets.

    Kept short (a Unix socket path may hold at most 107 bytes) and per user: `$SPARKRUN_SSH_CONTROL_DIR`, else
    `$XDG_RUNTIME_DIR/sparkrun-ssh`, else `<tmp>/sparkrun-ssh-<uid>`.
    """
    explicit = os.environ.get("SPARKRUN_SSH_CONTROL_DIR")
    if explicit:
        return Path(explicit)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "sparkrun-ssh"
    return Path(tempfile.gettempdir()) / f"sparkrun-ssh-{os.getuid()}"


def config_file() -> Path:
    return config_dir() / "config.yaml"


@dataclass(frozen=True)
class UserConfig:
    """The parsed `config.yaml`. Unknown keys are kept so newer files still load."""

    path: Path
    data: Mapping[str, Any] = field(default_factory=dict)

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node


def load_yaml_mapping(path: Path, *, what: str) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; errors name the file and line."""
    import yaml  # deferred: not needed for --help / --version

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML in {what}: nested too deeply", hint="flatten the file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML in {what}: {problem}", hint="fix the file's syntax") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {what} must be a mapping, got {type(data).__name__}")
    if _contains_itself(data):
        raise ConfigError(f"{path}: invalid YAML in {what}: an alias refers to a value that contains it")
    return data


def _contains_itself(root: Any) -> bool:
    """True when YAML aliases made a value contain itself (iterative, so any depth)."""
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        if leaving:
            on_path.discard(id(node))
            continue
        if not isinstance(node, dict | list):
            continue
        if id(node) in on_path:
            return True
        on_path.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in (node.values() if isinstance(node, dict) else node))
    return False


def load_user_config() -> UserConfig:
    path = config_file()
    return UserConfig(path=path, data=load_yaml_mapping(path, what="sparkrun config"))


def write_atomic(path: Path, write: Callable[[IO[str]], None]) -> None:
    """Write a file so that a reader never sees it half-written, and it survives a crash once this returns: a
    temporary file in the same directory, flushed to disk, renamed over the old one, and the rename flushed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # the directory entry too (not possible on every filesystem)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_yaml_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write YAML so that a reader never sees a half-written file."""
    import yaml  # deferred: not needed for --help / --version

    write_atomic(path, lambda fh: yaml.safe_dump(dict(data), fh, sort_keys=False, default_flow_style=False))


_LOCKED = threading.local()
LOCK_WAIT_S = 60.0


@contextmanager
def config_lock(wait: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold the config dir's lock (a real `flock` on `<config>/.lock`) for a read-modify-write of its files
    (`config.yaml`, `clusters/*.yaml`, `registries.yaml`), so concurrent sparkrun processes never lose each other's
    changes. Re-entrant within a thread; released however the process ends."""
    if getattr(_LOCKED, "depth", 0):
        _LOCKED.depth += 1
        try:
            yield
        finally:
            _LOCKED.depth -= 1
        return
    directory = config_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a+") as fh:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise ConfigError(
                        f"{directory}: another sparkrun process holds the config lock (.lock) for over {wait:.0f}s",
                        hint="let it finish, or find it with `fuser -v` on that file",
                    ) from None
                time.sleep(0.05)
        _LOCKED.depth = 1
        try:
            yield
        finally:
            _LOCKED.depth = 0
