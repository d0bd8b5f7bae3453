"""The value chain: which value each setting has, and which layer it came from. The only module that imports vpd.

Layers, highest first: CLI flags and `-o key=value` > matched `overrides:` > recipe `defaults:` > runtime defaults
(`build_settings`; the CLI keys are `settings_keys.CLI_SETTING_KEYS`).
`None` means "unset" and never shadows a lower layer (vpd would let it: quirk 1 in the style notes), so every layer is
stripped of `None` before the chain is built. Nested values are looked up per leaf (`-o speculative_config.num_
speculative_tokens=3` changes one field); a lower layer's JSON-object string (the usual way recipes write
`speculative_config`) is opened up for that and serialised back. Placeholders are not substituted here (vpd's
`chain[k]` would, `chain.get` does not, and unknown `{x}` would pass silently): that is `recipes/render.py`'s job.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sparkrun.errors import UsageError
from sparkrun.recipes.model import Recipe
from sparkrun.recipes.overrides import PlatformFacts, override_matches, selector_facts
from sparkrun.recipes.settings_keys import CLI_SETTING_KEYS
from sparkrun.runtimes.base import Runtime

Path_ = tuple[str, ...]
Layer = tuple[str, Mapping[str, Any]]  # (label, values): labels are shown by `sparkrun show`

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][+-]?\d+)")
_OPTION_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*")


@dataclass(frozen=True)
class Settings(Mapping[str, Any]):
    """Resolved settings: read it like a mapping. `origins` maps each dotted key to its layer's label."""

    data: Mapping[str, Any]
    origins: Mapping[str, str]
    # Filled in by `build_settings`: the recipe env with matched overrides applied, the image a matched override
    # chose, and which overrides matched (indexes into `recipe.overrides`).
    env: Mapping[str, str] = field(default_factory=dict)
    container: str | None = None
    matched_overrides: tuple[int, ...] = ()

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def origin(self, key: str) -> str | None:
        return self.origins.get(key)


def parse_value(text: str) -> Any:
    """`-o` typing: int, float, bool, JSON (object, array, string), else the text as given."""
    stripped = text.strip()
    if _INT.fullmatch(stripped):
        return int(stripped)
    if _FLOAT.fullmatch(stripped):
        return float(stripped)
    if stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    if stripped[:1] in ("{", "[", '"'):
        try:
            return json.loads(stripped)
        except ValueError:
            return text
    return text


def parse_options(options: Sequence[str]) -> dict[str, Any]:
    """`-o key=value` / `-o key.field=value` → a nested mapping (later options win)."""
    out: dict[str, Any] = {}
    for option in options:
        key, sep, raw = option.partition("=")
        key = key.strip()
        if not sep or not _OPTION_KEY.fullmatch(key):
            raise UsageError(
                f"-o {option!r}: expected key=value or key.field=value",
                hint="e.g. -o max_model_len=8192 -o speculative_config.num_speculative_tokens=3",
            )
        parts = key.split(".")
        parts[0] = parts[0].replace("-", "_")
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = parse_value(raw)
    return out


def strip_none(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy without `None` values (recursively): unset never shadows."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        out[str(key)] = strip_none(value) if isinstance(value, Mapping) else value
    return out


def _json_object(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, str) or not value.lstrip().startswith("{"):
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _open_json_strings(layers: list[dict[str, Any]]) -> set[str]:
    """Where one layer sets fields of a key that a lower layer wrote as a JSON string, parse that string."""
    opened: set[str] = set()
    for index, layer in enumerate(layers):
        for key, value in layer.items():
            if not isinstance(value, Mapping):
                continue
            for lower in layers[index + 1 :]:
                parsed = _json_object(lower.get(key))
                if parsed is not None:
                    lower[key] = parsed
                    opened.add(key)
    return opened


def _leaves(value: Mapping[str, Any], prefix: Path_) -> Iterator[Path_]:
    for key, sub in value.items():
        path = (*prefix, key)
        if isinstance(sub, Mapping) and sub:
            yield from _leaves(sub, path)
        else:
            yield path


def _put(target: dict[str, Any], path: Path_, value: Any) -> None:
    node = target
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value


def _origin(layers: Sequence[Layer], path: Path_) -> str:
    for label, values in layers:
        node: Any = values
        for part in path:
            if not isinstance(node, Mapping) or part not in node:
                break
            node = node[part]
        else:
            return label
    return "?"


def _in_order_of(value: Mapping[str, Any], template: Mapping[str, Any]) -> dict[str, Any]:
    """`value`'s items in the order the lowest layer wrote them (so serialised JSON reads like the recipe)."""
    ordered = {k: value[k] for k in template if k in value}
    ordered.update({k: v for k, v in value.items() if k not in ordered})
    return ordered


def resolve_layers(layers: Sequence[Layer]) -> Settings:
    """Resolve every key of every layer (highest first) through one vpd chain."""
    from vpd import vpd_chain  # deferred: vpd (and six) are not needed for --help

    cleaned = [strip_none(values) for _label, values in layers]
    opened = _open_json_strings(cleaned)
    labelled: list[Layer] = [(label, values) for (label, _), values in zip(layers, cleaned, strict=True)]
    chain = vpd_chain(*cleaned)
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    seen: set[Path_] = set()
    for layer in cleaned:
        for path in _leaves(layer, ()):
            if path in seen:
                continue
            seen.add(path)
            value = chain.get(list(path)) if chain is not None else None
            if value is None or (isinstance(value, Mapping) and value):  # mappings are built from their leaves
                continue
            _put(values, path, value)
            origins[".".join(path)] = _origin(labelled, path)
    for key in opened:
        if isinstance(values.get(key), Mapping):
            base: Mapping[str, Any] = next(
                (layer[key] for layer in reversed(cleaned) if isinstance(layer.get(key), Mapping)), {}
            )
            values[key] = json.dumps(_in_order_of(values[key], base), separators=(",", ":"))
            origins[key] = _origin(labelled, (key,))
    return Settings(data=values, origins=origins)


def cli_layer(cli_values: Mapping[str, Any], options: Sequence[str]) -> dict[str, Any]:
    """The `cli` layer: `-o` options, then the dedicated flags (`--tp`, `--port`, ...) on top. Only
    `CLI_SETTING_KEYS` may come as flags; anything else is a caller's bug."""
    unknown = sorted(set(cli_values) - set(CLI_SETTING_KEYS))
    if unknown:
        raise TypeError(f"not command-line setting keys: {', '.join(unknown)}")
    layer = parse_options(options)
    layer.update({k: v for k, v in cli_values.items() if v is not None})
    return layer


def build_settings(
    recipe: Recipe,
    runtime: Runtime,
    cli_values: Mapping[str, Any],
    options: Sequence[str],
    *,
    platform: PlatformFacts | None = None,
    num_nodes: int | None = None,
) -> Settings:
    """Resolve the value chain: CLI flags and `-o` > matched overrides > recipe defaults > runtime defaults."""
    builtin = {"model": recipe.model, "served_model_name": recipe.model, "model_revision": recipe.model_revision}
    cli = cli_layer(cli_values, options)
    lower: list[Layer] = [
        ("recipe", recipe.defaults),
        (f"runtime {runtime.name}", runtime.defaults()),
        ("builtin", builtin),
    ]
    base = resolve_layers([("cli", cli), *lower])
    facts = selector_facts(
        base, runtime=runtime.name, family=runtime.family, platform=platform or PlatformFacts(), num_nodes=num_nodes
    )
    matched = [o for o in recipe.overrides if override_matches(o, facts, base)]
    layers = [("cli", cli), *((f"overrides[{o.index}]", o.defaults) for o in reversed(matched)), *lower]
    resolved = resolve_layers(layers)
    env = dict(recipe.env)
    container = None
    for override in matched:
        env.update(override.env)
        container = override.container or container
    return Settings(
        data=resolved.data,
        origins=resolved.origins,
        env=env,
        container=container,
        matched_overrides=tuple(o.index for o in matched),
    )
