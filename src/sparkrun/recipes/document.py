"""YAML recipe documents with a line index, and the `include:` merge.

A `Document` is the raw mapping of one recipe file (or of an include chain, merged) plus, for every key path, the
`file:line` where it was written, so errors can say `recipe.yaml:12: defaults.port: ...`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sparkrun.errors import RecipeError
from sparkrun.recipes.model import format_path

# Keys whose values merge one level deep, each value replaced whole ("atomic"): a default that is a mapping is not
# merged into the base's mapping of the same name.
ATOMIC_VALUE_KEYS = frozenset({"defaults", "env"})


@dataclass
class Document:
    """One recipe document. Mutable while it is being migrated and merged; `Recipe` is the frozen result."""

    data: dict[str, Any]
    display: str  # file name used in messages
    locations: dict[str, str] = field(default_factory=dict)  # dotted key path -> "file:line"
    trusted: bool = True
    chain: list[str] = field(default_factory=list)  # include chain, outermost first
    duplicates: list[str] = field(default_factory=list)  # "file:line key" of keys written twice (the last wins)

    def where(self, key: str) -> str:
        return self.locations.get(key) or self.display


def _loader_class() -> Any:
    import yaml  # deferred: only commands that read recipes pay for PyYAML

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _index(node: Any, path: tuple[str | int, ...], display: str, out: dict[str, str], dups: list[str]) -> None:
    """Record the line of every mapping key and sequence item under `node` (and keys written twice)."""
    from yaml import MappingNode, ScalarNode, SequenceNode  # deferred: PyYAML only once a recipe is read

    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.value == "<<":
                continue
            sub = (*path, str(key_node.value))
            where = f"{display}:{key_node.start_mark.line + 1}"
            if format_path(sub) in out:
                dups.append(f"{where} {format_path(sub)}")
            out[format_path(sub)] = where  # the last one wins, as in the loaded data
            _index(value_node, sub, display, out, dups)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            sub = (*path, i)
            out.setdefault(format_path(sub), f"{display}:{item.start_mark.line + 1}")
            _index(item, sub, display, out, dups)


def parse_yaml(text: str, display: str, dups: list[str] | None = None) -> tuple[Any, dict[str, str]]:
    """Parse YAML text; returns the data and the line index (`dups` collects keys written twice). Invalid YAML
    raises a one-line `RecipeError`."""
    import yaml  # deferred: PyYAML only once a recipe is read

    loader = _loader_class()(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{display}:{mark.line + 1}" if mark is not None else display
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RecipeError(f"{where}: invalid YAML: {problem}", hint="fix the file's YAML syntax") from exc
    except (ValueError, TypeError, RecursionError) as exc:  # e.g. unhashable keys, absurd nesting
        raise RecipeError(f"{display}: invalid YAML: {exc}", hint="fix the file's YAML syntax") from exc
    finally:
        loader.dispose()
    locations: dict[str, str] = {}
    if node is not None and _contains_itself(node):
        raise RecipeError(
            f"{display}: invalid YAML: an alias refers to a node that contains it (a structure without end)",
            hint="use the alias outside the node it names",
        )
    if node is not None:
        try:
            _index(node, (), display, locations, dups if dups is not None else [])
        except RecursionError:
            raise RecipeError(f"{display}: invalid YAML: nested too deeply", hint="flatten the file") from None
    return data, locations


def _contains_itself(root: Any) -> bool:
    """True when an alias makes a node contain itself (YAML allows it; nothing can use it). Iterative: any depth."""
    from yaml import MappingNode, SequenceNode  # deferred: only commands that read recipes pay for PyYAML

    on_path: set[int] = set()
    done: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        if leaving:
            on_path.discard(id(node))
            done.add(id(node))
            continue
        if id(node) in on_path:
            return True
        if id(node) in done or not isinstance(node, MappingNode | SequenceNode):
            continue
        on_path.add(id(node))
        stack.append((node, True))
        children = [n for pair in node.value for n in pair] if isinstance(node, MappingNode) else node.value
        stack.extend((child, False) for child in children)
    return False


def parse_document(text: str, display: str, *, trusted: bool) -> Document:
    dups: list[str] = []
    data, locations = parse_yaml(text, display, dups)
    if data is None:
        raise RecipeError(f"{display}: the file is empty", hint="a recipe needs at least `model:`")
    if not isinstance(data, dict):
        raise RecipeError(
            f"{display}:1: a recipe must be a YAML mapping, got {type(data).__name__}",
            hint="see `sparkrun recipe validate --help` for the recipe format",
        )
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise RecipeError(f"{display}: top-level keys must be strings, got {bad[0]!r}")
    return Document(data=data, display=display, locations=locations, trusted=trusted, chain=[display], duplicates=dups)


def _merge_atomic(base: Any, child: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base) if isinstance(base, Mapping) else {}
    for key, value in child.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def deep_merge(base: Mapping[str, Any], child: Mapping[str, Any], *, top: bool = True) -> dict[str, Any]:
    """`include:` semantics: the child wins; `null` deletes; `defaults`/`env` merge per key with atomic values;
    `overrides` lists append (base first); other mappings merge recursively; lists and scalars are replaced."""
    merged = dict(base)
    for key, value in child.items():
        if value is None:
            merged.pop(key, None)
        elif top and key in ATOMIC_VALUE_KEYS and isinstance(value, Mapping):
            merged[key] = _merge_atomic(merged.get(key), value)
        elif top and key == "overrides" and isinstance(value, list):
            previous = merged.get(key)
            merged[key] = [*(previous if isinstance(previous, list) else []), *value]
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value, top=False)
        else:
            merged[key] = value
    return merged


def _shift_override(key: str, shift: int) -> str:
    """Child `overrides[i]` entries follow the base's after an include merge."""
    match = re.match(r"overrides\[(\d+)\]", key)
    if not shift or match is None:
        return key
    return f"overrides[{int(match.group(1)) + shift}]{key[match.end() :]}"


def merge_documents(base: Document, child: Document) -> Document:
    """The child document layered over its include base. Trust is the weakest member's."""
    data = deep_merge(base.data, child.data)
    data.pop("include", None)
    base_overrides = base.data.get("overrides")
    shift = len(base_overrides) if isinstance(base_overrides, list) and "overrides" in child.data else 0
    locations = {**base.locations, **{_shift_override(k, shift): v for k, v in child.locations.items()}}
    return Document(
        data=data,
        display=child.display,
        locations=locations,
        trusted=base.trusted and child.trusted,
        chain=[*child.chain[:1], *base.chain],
        duplicates=[*base.duplicates, *child.duplicates],
    )
