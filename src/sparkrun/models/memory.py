"""The facts a memory estimate needs for a manifest, fetched once and kept in the metadata cache:
config.json (safetensors models), each safetensors file's header (range reads: tensor dtypes and shapes, no
weights), or the primary GGUF file's metadata (range reads). Offline, only what is cached is used: without
headers the weights are the files' sizes; without config.json the recipe's `metadata:` block may stand in.

`estimate_for_manifest(manifest, request)` = facts + `estimate_vram`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sparkrun.models import metacache
from sparkrun.models.errors import ModelNotCachedError
from sparkrun.models.facts import ModelFacts, facts_from_config, facts_from_gguf, facts_from_recipe_metadata
from sparkrun.models.gguf import ArrayInfo, GgufMetadata, read_gguf_metadata
from sparkrun.models.manifest import ModelManifest
from sparkrun.models.vram import VramEstimate, VramRequest, WeightsSummary, estimate_vram

SAFETENSORS_BYTES = {
    "F64": 8,
    "I64": 8,
    "U64": 8,
    "F32": 4,
    "I32": 4,
    "U32": 4,
    "BF16": 2,
    "F16": 2,
    "I16": 2,
    "U16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "F8_E8M0": 1,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "F4": 0.5,
}
PACKED = frozenset({"U8", "I8", "I32", "U32", "I16", "U16", "F4"})  # quantized weights packed into integers


def summarize_safetensors_header(tensors: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """{name: {dtype, shape}} -> {"elements": {dtype: count}, "bytes": data bytes}."""
    elements: dict[str, int] = {}
    for info in tensors.values():
        dtype = str(info["dtype"])
        elements[dtype] = elements.get(dtype, 0) + math.prod(int(d) for d in info["shape"])
    data = sum(int(n * SAFETENSORS_BYTES.get(dtype, 2)) for dtype, n in elements.items())
    return {"elements": elements, "bytes": data}


def weights_from_headers(summaries: list[Mapping[str, Any]]) -> WeightsSummary:
    elements: dict[str, int] = {}
    for summary in summaries:
        for dtype, n in summary["elements"].items():
            elements[dtype] = elements.get(dtype, 0) + int(n)
    packed = any(dtype in PACKED for dtype in elements)
    return WeightsSummary(
        total_bytes=sum(int(s["bytes"]) for s in summaries),
        parameters=None if packed else sum(elements.values()),
        by_dtype=elements,
        source="safetensors headers",
    )


def _config(manifest: ModelManifest, offline: bool) -> dict[str, Any] | None:
    cached = metacache.load_fact(manifest.repo_id, manifest.commit, "config.json")
    if isinstance(cached, dict) or offline or manifest.file("config.json") is None:
        return cached if isinstance(cached, dict) else None
    from sparkrun.models.hub import fetch_small_file  # deferred: imports huggingface_hub

    scratch = str(metacache.metadata_root() / "hub")
    config = json.loads(fetch_small_file(manifest.repo_id, manifest.commit, "config.json", scratch))
    metacache.save_fact(manifest.repo_id, manifest.commit, "config.json", config)
    return config if isinstance(config, dict) else None


def _header(manifest: ModelManifest, path: str, offline: bool) -> dict[str, Any] | None:
    name = f"safetensors-header:{path}"
    cached = metacache.load_fact(manifest.repo_id, manifest.commit, name)
    if isinstance(cached, dict) or offline:
        return cached if isinstance(cached, dict) else None
    from sparkrun.models.hub import safetensors_header  # deferred: imports huggingface_hub

    summary = summarize_safetensors_header(safetensors_header(manifest.repo_id, manifest.commit, path))
    metacache.save_fact(manifest.repo_id, manifest.commit, name, summary)
    return summary


def _safetensors_weights(manifest: ModelManifest, offline: bool) -> WeightsSummary:
    paths = [f.path for f in manifest.files if f.path.endswith(".safetensors")]
    with ThreadPoolExecutor(max_workers=8) as pool:
        summaries = list(pool.map(lambda p: _header(manifest, p, offline), paths))
    if paths and all(summaries):
        return weights_from_headers([s for s in summaries if s])
    weights = [f for f in manifest.files if f.path.endswith((".safetensors", ".bin", ".pt", ".pth"))]
    return WeightsSummary(total_bytes=sum(f.size for f in weights), source="file sizes")


def _to_json(value: Any) -> Any:
    return {"__array__": [value.item_type, value.length]} if isinstance(value, ArrayInfo) else value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict) and "__array__" in value:
        return ArrayInfo(*value["__array__"])
    return value


def gguf_metadata(manifest: ModelManifest, path: str, offline: bool) -> GgufMetadata | None:
    name = f"gguf-metadata:{path}"
    cached = metacache.load_fact(manifest.repo_id, manifest.commit, name)
    if isinstance(cached, dict):
        return GgufMetadata(
            cached["version"], cached["tensor_count"], {k: _from_json(v) for k, v in cached["kv"].items()}
        )
    if offline:
        return None
    from sparkrun.models.hub import fetch_range  # deferred: imports huggingface_hub

    item = manifest.file(path)
    meta = read_gguf_metadata(
        lambda start, end: fetch_range(manifest.repo_id, manifest.commit, path, start, end), item.size if item else None
    )
    record = {
        "version": meta.version,
        "tensor_count": meta.tensor_count,
        "kv": {k: _to_json(v) for k, v in meta.metadata.items()},
    }
    metacache.save_fact(manifest.repo_id, manifest.commit, name, record)
    return meta


def memory_facts(
    manifest: ModelManifest, *, offline: bool = False, recipe_metadata: Mapping[str, Any] | None = None
) -> tuple[ModelFacts, WeightsSummary]:
    """Architecture facts and weight sizes for a manifest (network only when not cached and not offline)."""
    if manifest.primary:
        weights = WeightsSummary(sum(f.size for f in manifest.files if f.path.endswith(".gguf")), source="GGUF files")
        meta = gguf_metadata(manifest, manifest.primary, offline)
        facts = facts_from_gguf(meta) if meta else None
    else:
        weights = _safetensors_weights(manifest, offline)
        config = _config(manifest, offline)
        facts = facts_from_config(config) if config else None
    facts = facts or facts_from_recipe_metadata(recipe_metadata or {})
    if facts is None:
        raise ModelNotCachedError(
            f"{manifest.repo_id}: no cached model config to estimate memory from (offline)",
            hint="run once online, or give num_layers, num_kv_heads and head_dim in the recipe's metadata",
        )
    return facts, weights


def estimate_for_manifest(
    manifest: ModelManifest,
    request: VramRequest,
    *,
    offline: bool = False,
    recipe_metadata: Mapping[str, Any] | None = None,
) -> VramEstimate:
    facts, weights = memory_facts(manifest, offline=offline, recipe_metadata=recipe_metadata)
    label = f"{manifest.repo_id}:{manifest.quant}" if manifest.quant else manifest.repo_id
    return estimate_vram(label, facts, weights, request)
