"""Format detection, v1 (eugr spark-vllm-docker) migration and the deprecated topology spellings.

v1 → v2, keeping the meaning the older sparkrun (0.4.2) gave v1 recipes (see recipes/README.md, "v1 (eugr) recipes"):
- The runtime is the one the command implies, exactly as the older tool ran it: a declared `runtime:` stays; else
  `vllm serve …` (or no command) → `runtime: vllm` plus `builder: eugr`, which `runtime_choice` turns into
  `vllm-ray` when the command asks for `--distributed-executor-backend ray` and `vllm-distributed` otherwise;
  `sglang serve` / `sglang.launch_server` → sglang, `llama-server` → llama-cpp (no builder).
  Both vLLM runtimes run a `vllm-node*` build tag's published nightly twin when the tag is absent on the head.
- `build_args` → `runtime_config.build_args`; `mods` stay top-level hooks.
- `{{`/`}}` are v1's literal-brace escapes. The text is kept; `Recipe.brace_escapes` tells the renderer to undouble
  them in the same single pass that substitutes placeholders, so a substituted JSON value is never re-escaped.
- `solo_only`/`cluster_only`/`mode` (all versions) become `max_nodes: 1` / `min_nodes: >= 2`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sparkrun.recipes.document import Document
from sparkrun.recipes.model import Issue
from sparkrun.recipes.runtime_choice import infer_runtime

V1_BUILDER = "eugr"
TOPOLOGY_KEYS = ("solo_only", "cluster_only", "mode")


@dataclass
class Migration:
    format: int  # 1 or 2 (every version >= 2 is read as v2, as the older tool does)
    brace_escapes: bool = False
    issues: list[Issue] = field(default_factory=list)


def declared_version(data: dict[str, Any]) -> Any:
    value = data.get("recipe_version")
    return data.get("sparkrun_version") if value is None else value


def detect_format(doc: Document) -> Migration:
    raw = declared_version(doc.data)
    if raw is None:
        return Migration(format=2)
    text = str(raw).strip()
    try:
        number = float(text)
    except ValueError:
        number = -1.0
    if number == 1.0:
        return Migration(format=1)
    if number >= 2.0:
        return Migration(format=2)
    issue = Issue(
        "warning",
        "invalid-recipe-version",
        f'unknown recipe_version {text!r}: read as "2" (expected "1" for eugr v1, or "2" and later)',
        doc.where("recipe_version"),
        "recipe_version",
        hint='use recipe_version: "2"',
    )
    return Migration(format=2, issues=[issue])


def _migrate_v1(doc: Document, result: Migration) -> None:
    data = doc.data
    notes = []
    if not data.get("runtime"):
        command = data.get("command")
        implied = infer_runtime(command if isinstance(command, str) else None) or "vllm"
        data["runtime"] = implied
        how = " (vllm-ray for a Ray executor, else vllm-distributed)" if implied == "vllm" else ""
        notes.append(f"runtime {implied} from the command{how}")
        if implied == "vllm" and not data.get("builder"):
            data["builder"] = V1_BUILDER
            notes.append(f"builder {V1_BUILDER}")
    if "build_args" in data:
        runtime_config = data.get("runtime_config")
        merged = dict(runtime_config) if isinstance(runtime_config, dict) else {}
        merged.setdefault("build_args", data.pop("build_args"))
        data["runtime_config"] = merged
        notes.append("build_args -> runtime_config.build_args")
    if data.get("env") is None:
        data["env"] = {}
    command = data.get("command")
    result.brace_escapes = True
    if isinstance(command, str) and ("{{" in command or "}}" in command):
        notes.append("'{{'/'}}' read as literal braces")
    result.issues.append(
        Issue(
            "warning",
            "deprecated-recipe-format",
            'recipe_version "1" is the legacy eugr format; migrated on load (' + ", ".join(notes) + ")",
            doc.where("recipe_version"),
            "recipe_version",
            hint='convert it: recipe_version: "2", an explicit runtime:, literal braces written once',
        )
    )


def _v2_brace_escapes(doc: Document, result: Migration) -> None:
    command = doc.data.get("command")
    if isinstance(command, str) and "{{" in command:
        result.brace_escapes = True
        result.issues.append(
            Issue(
                "warning",
                "deprecated-brace-escape",
                "command uses the v1 doubled-brace escape '{{'/'}}' in a v2 recipe; read as literal braces",
                doc.where("command"),
                "command",
                hint="write literal JSON braces once in v2 recipes: '{\"level\": 3}'",
            )
        )


def _flag(doc: Document, key: str, result: Migration) -> bool:
    value = doc.data.get(key)
    if value is None or isinstance(value, bool):
        return bool(value)
    result.issues.append(Issue("error", "invalid-type", f"expected true or false, got {value!r}", doc.where(key), key))
    return False


def _node_count(doc: Document, key: str) -> int | None:
    value = doc.data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _conflict(doc: Document, result: Migration, key: str, message: str) -> None:
    result.issues.append(Issue("error", "conflicting-topology", message, doc.where(key), key))


def normalize_topology(doc: Document, result: Migration) -> None:
    """Rewrite `solo_only`/`cluster_only`/`mode` into `min_nodes`/`max_nodes`; the keys themselves are kept."""
    present = [k for k in TOPOLOGY_KEYS if k in doc.data]
    if not present:
        return
    mode = doc.data.get("mode")
    if mode is not None and mode not in ("auto", "solo", "cluster"):
        result.issues.append(
            Issue("error", "invalid-value", f"expected auto, solo or cluster, got {mode!r}", doc.where("mode"), "mode")
        )
    solo = _flag(doc, "solo_only", result) or mode == "solo"
    cluster = _flag(doc, "cluster_only", result) or mode == "cluster"
    min_nodes, max_nodes = _node_count(doc, "min_nodes"), _node_count(doc, "max_nodes")
    if solo and cluster:
        _conflict(doc, result, present[0], "a recipe cannot be both solo-only and cluster-only")
    elif solo:
        if max_nodes not in (None, 1) or (min_nodes or 1) > 1:
            key = "solo_only" if "solo_only" in doc.data else "mode"
            _conflict(doc, result, key, "solo-only, but min_nodes/max_nodes allow more than 1 node")
        doc.data["max_nodes"] = 1
    elif cluster:
        if max_nodes == 1 or min_nodes == 1:
            key = "cluster_only" if "cluster_only" in doc.data else "mode"
            _conflict(doc, result, key, "cluster-only, but min_nodes/max_nodes say 1 node")
        doc.data["min_nodes"] = max(2, min_nodes or 2)
    result.issues.append(
        Issue(
            "warning",
            "deprecated-topology",
            f"{', '.join(present)} {'is a deprecated spelling' if len(present) == 1 else 'are deprecated spellings'} "
            "of the node range",
            doc.where(present[0]),
            present[0],
            hint="use min_nodes / max_nodes (solo: max_nodes: 1; cluster: min_nodes: 2) and delete the old keys",
        )
    )


def migrate(doc: Document) -> Migration:
    """Bring a document to the v2 shape in place; returns what was done and found."""
    result = detect_format(doc)
    if result.format == 1:
        _migrate_v1(doc, result)
    else:
        _v2_brace_escapes(doc, result)
    normalize_topology(doc, result)
    return result
