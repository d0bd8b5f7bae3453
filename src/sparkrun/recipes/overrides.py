"""`overrides:`: conditional layers of `defaults`/`env`/`container`, selected by topology and platform facts.

```yaml
overrides:
  - when: {tp: {gte: 2}, runtime_family: vllm}
    defaults: {gpu_memory_utilization: 0.85}
    env: {NCCL_DEBUG: WARN}
```
A selector's condition is a scalar (equals), a list (one of) or a mapping of operators (`eq ne in not_in gt gte lt
lte`); all selectors of one entry must match. `config: {key: condition}` tests resolved settings. Overrides may not
set `port`, `served_model_name` or the parallelism: those decide which hosts and ports a job uses, and a layer that
depends on parallelism must not be able to change it.

Planning never touches hosts, so platform facts default to a DGX Spark (`PlatformFacts()`).
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sparkrun.recipes.document import Document
from sparkrun.recipes.model import Issue, Override

SELECTORS = frozenset(
    {
        "tp",
        "pp",
        "dp",
        "ep",
        "cp",
        "nodes",
        "gpus_per_node",
        "runtime",
        "runtime_family",
        "platform",
        "vendor",
        "accelerator",
        "arch",
        "capability",
        "memory_gb",
        "config",
    }
)
OPERATORS = frozenset({"eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte"})
ENTRY_KEYS = frozenset({"when", "defaults", "env", "container"})
FORBIDDEN_DEFAULTS = frozenset(
    {
        "port",
        "served_model_name",
        "tensor_parallel",
        "pipeline_parallel",
        "data_parallel",
        "expert_parallel",
        "context_parallel",
    }
)
# selector -> settings key holding the value (default 1)
PARALLEL_KEYS = {
    "tp": "tensor_parallel",
    "pp": "pipeline_parallel",
    "dp": "data_parallel",
    "ep": "expert_parallel",
    "cp": "context_parallel",
}


@dataclass(frozen=True)
class PlatformFacts:
    """What selectors know about the hardware. Defaults: one DGX Spark (GB10, unified memory)."""

    platform: str = "dgx-spark"
    vendor: str = "nvidia"
    accelerator: str = "gb10"
    arch: str = "aarch64"
    gpus_per_node: int = 1
    memory_gb: float = 121.0
    capability: str = "12.1"


def _err(doc: Document, key: str, message: str) -> Issue:
    return Issue("error", "invalid-override", message, doc.where(key), key)


def _never_matches(doc: Document, key: str, message: str) -> Issue:
    """What the older sparkrun accepted with a warning: an entry this sparkrun cannot evaluate never applies."""
    return Issue(
        "warning",
        "unknown-override-selector",
        f"{message}, so this override never applies",
        doc.where(key),
        key,
        "check the spelling against recipes/README.md (overrides)",
    )


def _check_condition(doc: Document, key: str, condition: Any) -> list[Issue]:
    if isinstance(condition, Mapping):
        unknown = sorted(str(k) for k in condition if k not in OPERATORS)
        if unknown:
            ops = ", ".join(sorted(OPERATORS))
            return [_never_matches(doc, key, f"unknown operator {unknown[0]!r} (known: {ops})")]
    return []


def _check_when(doc: Document, prefix: str, when: Any) -> list[Issue]:
    if not isinstance(when, Mapping) or not when:
        return [_err(doc, f"{prefix}.when", "`when:` must be a non-empty mapping of selectors")]
    issues: list[Issue] = []
    for selector, condition in when.items():
        key = f"{prefix}.when.{selector}"
        if selector not in SELECTORS:
            known = ", ".join(sorted(SELECTORS))
            issues.append(_never_matches(doc, key, f"unknown selector {selector!r} (known: {known})"))
        elif selector == "config":
            if not isinstance(condition, Mapping):
                issues.append(_err(doc, key, "`config:` must map setting names to conditions"))
            else:
                for name, sub in condition.items():
                    issues += _check_condition(doc, f"{key}.{name}", sub)
        else:
            issues += _check_condition(doc, key, condition)
    return issues


def _parse_entry(doc: Document, index: int, entry: Any) -> tuple[Override | None, list[Issue]]:
    prefix = f"overrides[{index}]"
    if not isinstance(entry, Mapping):
        return None, [_err(doc, prefix, "each override must be a mapping with `when:`")]
    issues = [
        _err(doc, f"{prefix}.{k}", f"unknown key {k!r}; an override may set when, defaults, env, container")
        for k in entry
        if k not in ENTRY_KEYS
    ]
    issues += _check_when(doc, prefix, entry.get("when"))
    defaults = entry.get("defaults") or {}
    env = entry.get("env") or {}
    container = entry.get("container")
    if not isinstance(defaults, Mapping):
        issues.append(_err(doc, f"{prefix}.defaults", "must be a mapping"))
        defaults = {}
    for key in sorted(FORBIDDEN_DEFAULTS & set(defaults)):
        issues.append(_err(doc, f"{prefix}.defaults.{key}", f"an override may not set {key}"))
    if not isinstance(env, Mapping):
        issues.append(_err(doc, f"{prefix}.env", "must be a mapping"))
        env = {}
    if container is not None and not isinstance(container, str):
        issues.append(_err(doc, f"{prefix}.container", "must be an image name"))
        container = None
    if any(issue.severity == "error" for issue in issues):
        return None, issues
    override = Override(
        index=index,
        when=dict(entry["when"]),
        defaults={k: v for k, v in defaults.items() if k not in FORBIDDEN_DEFAULTS},
        env={str(k): _env_text(v) for k, v in env.items() if v is not None},
        container=container,
    )
    return override, issues


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_overrides(doc: Document) -> tuple[tuple[Override, ...], list[Issue]]:
    raw = doc.data.get("overrides")
    if raw is None:
        return (), []
    if not isinstance(raw, list):
        return (), [_err(doc, "overrides", "`overrides:` must be a list")]
    found: list[Override] = []
    issues: list[Issue] = []
    for index, entry in enumerate(raw):
        override, problems = _parse_entry(doc, index, entry)
        issues += problems
        if override is not None:
            found.append(override)
    return tuple(found), issues


# ---- evaluation --------------------------------------------------------------------------------------------------
def _number(value: Any) -> float | tuple[int, ...] | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        parts = value.strip().split(".")
        if all(p.isdigit() for p in parts) and parts:
            return tuple(int(p) for p in parts) if len(parts) > 2 else float(value)
    return None


_ORDER = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op not in OPERATORS:
        return False
    if op in ("in", "not_in"):
        pool = expected if isinstance(expected, list) else [expected]
        hit = any(_equal(actual, item) for item in pool)
        return hit if op == "in" else not hit
    if op in ("eq", "ne"):
        return _equal(actual, expected) == (op == "eq")
    a, b = _number(actual), _number(expected)
    if isinstance(a, float) and isinstance(b, float):
        return bool(_ORDER[op](a, b))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return bool(_ORDER[op](a, b))
    return False


def _equal(actual: Any, expected: Any) -> bool:
    a, b = _number(actual), _number(expected)
    if a is not None and b is not None and type(a) is type(b):
        return a == b
    return str(actual).lower() == str(expected).lower()


def condition_matches(actual: Any, condition: Any) -> bool:
    if isinstance(condition, Mapping):
        return all(_compare(op, actual, expected) for op, expected in condition.items())
    if isinstance(condition, list):
        return _compare("in", actual, condition)
    return _compare("eq", actual, condition)


def selector_facts(
    settings: Mapping[str, Any], *, runtime: str, family: str, platform: PlatformFacts, num_nodes: int | None
) -> dict[str, Any]:
    """The value of every selector for one launch."""
    facts: dict[str, Any] = {sel: _as_int(settings.get(key)) for sel, key in PARALLEL_KEYS.items()}
    ranks = facts["tp"] * facts["pp"]
    facts["nodes"] = num_nodes if num_nodes is not None else max(1, -(-ranks // max(1, platform.gpus_per_node)))
    facts.update(
        gpus_per_node=platform.gpus_per_node,
        runtime=runtime,
        runtime_family=family or runtime,
        platform=platform.platform,
        vendor=platform.vendor,
        accelerator=platform.accelerator,
        arch=platform.arch,
        capability=platform.capability,
        memory_gb=platform.memory_gb,
    )
    return facts


def _as_int(value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 1
    return max(1, number)


def override_matches(override: Override, facts: Mapping[str, Any], settings: Mapping[str, Any]) -> bool:
    for selector, condition in override.when.items():
        if selector not in SELECTORS:
            return False
        if selector == "config":
            if not all(condition_matches(settings.get(k), c) for k, c in condition.items()):
                return False
        elif not condition_matches(facts.get(selector), condition):
            return False
    return True
