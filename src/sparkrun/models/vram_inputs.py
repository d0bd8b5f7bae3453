"""A `VramRequest` from a recipe's resolved settings and the rendered serve command.

The serve argv wins over the settings: a recipe may write `--kv-cache-dtype fp8` straight into `command:` (the
older tool missed that and mis-sized the KV cache, its issue #248). Flags of vLLM, SGLang and llama.cpp are read
in both `--flag value` and `--flag=value` spellings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from sparkrun.models.vram import GB10_MEMORY_BYTES, VramRequest

# request field -> (settings keys, value flags); the first one present wins, argv before settings
FIELDS: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "max_model_len": (
        ("max_model_len", "context_length", "ctx_size"),
        ("--max-model-len", "--context-length", "--ctx-size", "-c"),
    ),
    "gpu_memory_utilization": (
        ("gpu_memory_utilization", "mem_fraction_static"),
        ("--gpu-memory-utilization", "--mem-fraction-static"),
    ),
    "kv_cache_dtype": (("kv_cache_dtype", "cache_type_k"), ("--kv-cache-dtype", "--cache-type-k", "-ctk")),
    "kv_cache_dtype_v": (("cache_type_v",), ("--cache-type-v", "-ctv")),
    "tp": (("tensor_parallel", "tp", "tp_size"), ("--tensor-parallel-size", "-tp", "--tp-size", "--tp")),
    "pp": (("pipeline_parallel", "pp", "pp_size"), ("--pipeline-parallel-size", "-pp", "--pp-size")),
    "max_num_seqs": (
        ("max_num_seqs", "max_running_requests", "parallel"),
        ("--max-num-seqs", "--max-running-requests", "--parallel", "-np"),
    ),
    "max_num_batched_tokens": (
        ("max_num_batched_tokens", "chunked_prefill_size", "ubatch_size"),
        ("--max-num-batched-tokens", "--chunked-prefill-size", "--ubatch-size", "-ub"),
    ),
}
EAGER_FLAGS: Final = ("--enforce-eager", "--disable-cuda-graph")
EAGER_SETTINGS: Final = ("enforce_eager", "disable_cuda_graph")
INTS: Final = frozenset({"max_model_len", "tp", "pp", "max_num_seqs", "max_num_batched_tokens"})


def flag_values(argv: Sequence[str]) -> dict[str, str]:
    """`--flag value` / `--flag=value` pairs of an argv (the last occurrence wins)."""
    found: dict[str, str] = {}
    for i, token in enumerate(argv):
        if not token.startswith("-"):
            continue
        name, eq, value = token.partition("=")
        if eq:
            found[name] = value
        elif i + 1 < len(argv) and (not argv[i + 1].startswith("-") or _is_number(argv[i + 1])):
            found[name] = argv[i + 1]
    return found


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _pick(settings: Mapping[str, Any], flags: Mapping[str, str], keys: Sequence[str], names: Sequence[str]) -> Any:
    for name in names:
        if name in flags:
            return flags[name]
    for key in keys:
        if settings.get(key) is not None:
            return settings[key]
    return None


def _coerce(field: str, value: Any) -> Any:
    if field in INTS:
        return int(float(value))
    if field == "gpu_memory_utilization":
        return float(value)
    return str(value)


def vram_request_from_settings(
    runtime: str,
    settings: Mapping[str, Any],
    argv: Sequence[str] = (),
    *,
    nodes: int | None = None,
    host_memory_bytes: int = GB10_MEMORY_BYTES,
) -> VramRequest:
    """The request for a resolved recipe: `settings` (the value chain's result), `argv` (the rendered serve command
    of the head rank), `nodes` (hosts of a llama.cpp RPC job)."""
    flags = flag_values(argv)
    values: dict[str, Any] = {}
    for field, (keys, names) in FIELDS.items():
        raw = _pick(settings, flags, keys, names)
        if raw is not None and str(raw) != "":
            values[field] = _coerce(field, raw)
    eager = any(flag in argv for flag in EAGER_FLAGS) or any(bool(settings.get(k)) for k in EAGER_SETTINGS)
    return VramRequest(
        runtime=runtime,
        nodes=nodes,
        enforce_eager=eager,
        host_memory_bytes=host_memory_bytes,
        **{"kv_cache_dtype": "auto", **values},
    )
