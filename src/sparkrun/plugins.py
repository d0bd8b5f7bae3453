"""Runtime plugin discovery: `sparkrun.runtimes` entry points, registered in a scitrera-app-framework registry.

This is the only module that imports scitrera-app-framework (SAF). Built-in runtimes are declared as entry points in
sparkrun's own `pyproject.toml`, so first- and third-party runtimes take the same path. A plugin that fails to import
or is not a valid `Runtime` is recorded with its error and skipped; it never breaks the others.

`SPARKRUN_PLUGINS=a,b` restricts loading to the named runtimes (like llm's `LLM_LOAD_PLUGINS`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, ClassVar

from sparkrun.errors import PluginError
from sparkrun.runtimes.base import Runtime

ENTRY_POINT_GROUP = "sparkrun.runtimes"
EXT_RUNTIME = "sparkrun.runtime"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PluginInfo:
    name: str
    source: str  # distribution that declares it (e.g. "sparkrun 0.1.0") or "?"
    target: str  # the entry point value, "module:Class"
    error: str | None = None
    description: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


def _source(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "?"
    return f"{dist.metadata['Name']} {dist.version}"


def _check_runtime_class(obj: Any, ep: EntryPoint) -> type[Runtime]:
    if not (isinstance(obj, type) and issubclass(obj, Runtime)):
        raise TypeError(f"{ep.value} is not a sparkrun.runtimes.Runtime subclass")
    declared = getattr(obj, "name", None)
    if declared != ep.name:
        raise TypeError(f"{ep.value} declares name {declared!r} but is registered as {ep.name!r}")
    return obj


class RuntimeRegistry:
    """The runtimes of one invocation, held in a private SAF `Variables` (no module-level singleton)."""

    def __init__(self, only: set[str] | None = None) -> None:
        # deferred: SAF (~35 ms) loads only when a command needs the runtimes
        from scitrera_app_framework import Variables, init_framework_embedded

        self._v = init_framework_embedded("sparkrun", v=Variables(), fixed_logger=log)
        self._infos: dict[str, PluginInfo] = {}
        self._only = only  # `SPARKRUN_PLUGINS`: the only runtimes this registry may load (None: any)
        self._seen: set[tuple[str, str]] = set()

    def _register(self, cls: type[Runtime]) -> None:
        from scitrera_app_framework import Plugin, register_plugin  # deferred: as above

        class _RuntimeExtension(Plugin):  # type: ignore[misc]
            runtime_cls: ClassVar[type[Runtime]] = cls
            eager = False

            def name(self) -> str:
                return f"{EXT_RUNTIME}.{self.runtime_cls.name}"

            def extension_point_name(self, v: Any) -> str:
                return EXT_RUNTIME

            def is_enabled(self, v: Any) -> bool:
                return False  # multi-extension: SAF would otherwise cache it as the single implementation

            def is_multi_extension(self, v: Any) -> bool:
                return True

            def initialize(self, v: Any, logger: Any) -> Runtime:
                return self.runtime_cls()

        _RuntimeExtension.__name__ = f"{cls.__name__}Extension"
        register_plugin(_RuntimeExtension, v=self._v)

    def load(self, only: set[str] | None = None) -> RuntimeRegistry:
        """Import and register the entry points named in `only` (all when None); each one once."""
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, e.value)):
            if (only is not None and ep.name not in only) or (ep.name, ep.value) in self._seen:
                continue
            self._seen.add((ep.name, ep.value))
            if ep.name in self._infos:
                key = f"{ep.name} ({ep.value})"
                self._infos[key] = PluginInfo(
                    ep.name, _source(ep), ep.value, error=f"duplicate name {ep.name!r}; ignored"
                )
                continue
            try:
                cls = _check_runtime_class(ep.load(), ep)
                self._register(cls)
            except Exception as exc:  # plugin boundary: one broken plugin must not break the others
                self._infos[ep.name] = PluginInfo(ep.name, _source(ep), ep.value, error=f"{type(exc).__name__}: {exc}")
                continue
            self._infos[ep.name] = PluginInfo(ep.name, _source(ep), ep.value, description=cls.description)
        return self

    def infos(self) -> list[PluginInfo]:
        self.load(self._only)
        return list(self._infos.values())

    def names(self) -> list[str]:
        self.load(self._only)
        return sorted(name for name, info in self._infos.items() if info.ok)

    def _instances(self) -> dict[str, Runtime]:
        from scitrera_app_framework import get_extensions  # deferred: as above

        found: dict[str, Runtime] = get_extensions(EXT_RUNTIME, self._v)
        return {key.removeprefix(f"{EXT_RUNTIME}."): value for key, value in found.items()}

    def get(self, name: str) -> Runtime:
        """One runtime; only its own entry point is imported (a `run` pays for one plugin, not all)."""
        if self._only is None or name in self._only:
            self.load({name})
        info = self._infos.get(name)
        if info is not None and info.error is not None:
            raise PluginError(
                f"runtime {name!r} is installed but failed to load: {info.error}",
                hint="run `sparkrun plugins list` for details",
            )
        runtime = self._instances().get(name)
        if runtime is None:
            raise PluginError(
                f"unknown runtime {name!r}: no installed plugin provides it",
                hint=f"installed runtimes: {', '.join(self.names()) or 'none'}",
            )
        return runtime


def load_runtimes() -> RuntimeRegistry:
    """The runtime registry; plugins are imported on first use. `$SPARKRUN_PLUGINS` (comma-separated) restricts it
    to the runtimes it names."""
    only_env = os.environ.get("SPARKRUN_PLUGINS", "").strip()
    return RuntimeRegistry({n.strip() for n in only_env.split(",") if n.strip()} if only_env else None)
