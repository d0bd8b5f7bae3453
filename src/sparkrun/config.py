"""Where sparkrun keeps its files, and the user's config file.

Nothing here touches the disk at import time; directories are created by the code that writes into them.

- config dir: `$SPARKRUN_CONFIG_DIR`, else `$XDG_CONFIG_HOME/sparkrun`, else `~/.config/sparkrun`
  (holds `config.yaml`, `clusters/*.yaml`, `registries.yaml`)
- cache dir: `$SPARKRUN_CACHE_DIR`, else `$XDG_CACHE_HOME/sparkrun`, else `~/.cache/sparkrun`
  (holds `jobs/`, `pending/`, `registries/`, fetched recipes)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparkrun.errors import ConfigError


def _xdg(env_override: str, xdg_var: str, fallback: str) -> Path:
    explicit = os.environ.get(env_override)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get(xdg_var)
    if base:
        return Path(base).expanduser() / "sparkrun"
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
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML in {what}: {problem}", hint="fix the file's syntax") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {what} must be a mapping, got {type(data).__name__}")
    return data


def load_user_config() -> UserConfig:
    path = config_file()
    return UserConfig(path=path, data=load_yaml_mapping(path, what="sparkrun config"))


def write_yaml_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write YAML so that a reader never sees a half-written file."""
    import yaml  # deferred: not needed for --help / --version

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yaml.safe_dump(dict(data), fh, sort_keys=False, default_flow_style=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
