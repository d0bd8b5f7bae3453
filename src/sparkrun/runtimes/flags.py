"""Engine command lines as data: flag maps from settings keys to engine flags, and lookups in an existing argv.

A flag map is declarative (`{"max_model_len": value("--max-model-len"), ...}`). `render_flags` walks it in order
and turns the settings that are set into arguments: `None` means unset and emits nothing; `True`/`False` turn a
switch on or (when the engine has a negation) off; mappings and lists become compact JSON strings unless the flag
takes several values. The lookups (`find_flag`, `flag_value`) let a runtime see whether a recipe's `command:`
already carries a flag, so that it never adds one twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sparkrun.errors import RecipeError

_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0"})


@dataclass(frozen=True)
class FlagSpec:
    """How one settings key becomes engine arguments."""

    on: str | None  # the flag: followed by the value, or alone for a switch that is on
    switch: bool = False
    off: str | None = None  # emitted for a switch set to False (the engine's negation), if it has one
    multi: bool = False  # a list value becomes several arguments (argparse nargs='+')
    bool_words: tuple[str, str] = ("true", "false")  # how a bool is spelled for a value flag

    def names(self) -> tuple[str, ...]:
        """Every flag this spec can emit."""
        return tuple(name for name in (self.on, self.off) if name is not None)


def value(flag: str, *, multi: bool = False, bool_words: tuple[str, str] = ("true", "false")) -> FlagSpec:
    """A flag followed by the setting's value."""
    return FlagSpec(on=flag, multi=multi, bool_words=bool_words)


def switch(flag: str | None, *, off: str | None = None) -> FlagSpec:
    """A flag without a value: emitted when the setting is true; `off` (if any) when it is false."""
    return FlagSpec(on=flag, switch=True, off=off)


FlagMap = Mapping[str, FlagSpec]


def format_value(raw: Any, *, bool_words: tuple[str, str] = ("true", "false")) -> str:
    """One setting value as one command-line argument."""
    if isinstance(raw, bool):
        return bool_words[0] if raw else bool_words[1]
    if isinstance(raw, Mapping | list | tuple):
        return json.dumps(raw, separators=(",", ":"), sort_keys=False)
    return str(raw)


def _switch_state(key: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise RecipeError(f"setting {key!r} is a switch and must be true or false, got {raw!r}")


def _render_one(key: str, spec: FlagSpec, raw: Any) -> tuple[str, ...]:
    if spec.switch:
        chosen = spec.on if _switch_state(key, raw) else spec.off
        return () if chosen is None else (chosen,)
    assert spec.on is not None  # a value flag always has a name
    if spec.multi and isinstance(raw, list | tuple):
        return (spec.on, *(format_value(item) for item in raw))
    return (spec.on, format_value(raw, bool_words=spec.bool_words))


def render_flags(flag_map: FlagMap, settings: Mapping[str, Any]) -> tuple[str, ...]:
    """The arguments for every set key of `flag_map`, in map order. When two keys map to the same flag (an alias
    such as sglang's `mem_fraction_static` for `gpu_memory_utilization`) the first one set wins."""
    emitted: set[str] = set()
    argv: list[str] = []
    for key, spec in flag_map.items():
        raw = settings.get(key)
        if raw is None or emitted.intersection(spec.names()):
            continue
        argv.extend(_render_one(key, spec, raw))
        emitted.update(spec.names())
    return tuple(argv)


def all_flags(flag_map: FlagMap) -> frozenset[str]:
    """Every flag a map can emit (the tests check each against the engine's real flag list)."""
    return frozenset(name for spec in flag_map.values() for name in spec.names())


def _normalise(token: str) -> str:
    """`--max_model_len=8` → `--max-model-len` (vLLM accepts underscores and `=`); short flags stay as they are."""
    name = token.split("=", 1)[0]
    return name.replace("_", "-") if name.startswith("--") else name


def find_flag(argv: Sequence[str], names: Iterable[str]) -> int | None:
    """Index of the first argument that is one of `names` (also in `--flag=value`, `--snake_case` or `--kebab-case`
    form: vLLM accepts both, and trtllm-serve's click options are spelled with underscores)."""
    wanted = {_normalise(name) for name in names}
    for index, token in enumerate(argv):
        if token.startswith("-") and _normalise(token) in wanted:
            return index
    return None


def flag_value(argv: Sequence[str], names: Iterable[str]) -> str | None:
    """The value given to the first of `names` in `argv`, or None when the flag is absent or has no value."""
    index = find_flag(argv, names)
    if index is None:
        return None
    token = argv[index]
    if "=" in token and token.startswith("--"):
        return token.split("=", 1)[1]
    if index + 1 < len(argv) and not argv[index + 1].startswith("-"):
        return argv[index + 1]
    return None
