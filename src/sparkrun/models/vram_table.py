"""The human-readable form of a `VramEstimate` (plain text; the CLI decides colours)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sparkrun.models.vram import VramEstimate

GIB = 1024**3


def gib(n: float) -> str:
    return f"{n / GIB:,.2f} GiB"


def human_count(n: int) -> str:
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return str(n)


def _weights_detail(est: VramEstimate) -> str:
    w = est.weights
    parts = [f"{w.total_bytes / 1e9:,.2f} GB in total"]
    if w.parameters:
        dtypes = "/".join(sorted(w.by_dtype, key=lambda d: -w.by_dtype[d])) if w.by_dtype else ""
        parts.append(f"{human_count(w.parameters)} parameters" + (f" {dtypes}" if dtypes else ""))
    parts.append(f"from {w.source}")
    return ", ".join(parts)


def _topology(est: VramEstimate) -> str:
    if est.hosts == 1:
        return "1 host"
    if est.runtime.startswith("llama"):
        return f"{est.hosts} hosts (layers spread over RPC)"
    return f"{est.hosts} hosts: tp {est.tp} x pp {est.pp}"


def render_table(est: VramEstimate) -> str:
    kv_detail = f"{est.max_model_len:,} tokens x {est.kv_per_token_bytes / 1024:,.1f} KiB/token, {est.kv_cache_dtype}"
    rows = [
        ("weights", gib(est.weights_bytes), _weights_detail(est)),
        ("KV cache", gib(est.kv_cache_bytes), kv_detail),
        ("activations", gib(est.activation_bytes), "profile pass / compute buffer"),
        ("CUDA graphs", gib(est.cuda_graph_bytes), ""),
        ("runtime", gib(est.runtime_bytes), "CUDA context, allocator, NCCL"),
    ]
    lines = [f"Memory per host for {est.model} ({est.runtime}, {_topology(est)})"]
    lines += [f"  {name:<12} {value:>14}   {detail}".rstrip() for name, value, detail in rows]
    lines.append(f"  {'total':<12} {gib(est.required_bytes):>14}")
    budget_detail = f"{gib(est.host_memory_bytes)} x {est.utilization:.2f} memory fraction"
    lines.append(f"  {'budget':<12} {gib(est.budget_bytes):>14}   {budget_detail}")
    if est.fits:
        verdict = (
            f"fits: {gib(est.kv_room_bytes)} for KV cache = {est.kv_capacity_tokens:,} tokens, "
            f"{est.max_concurrent_sequences:,.1f} sequences of {est.max_model_len:,} tokens"
        )
    else:
        verdict = f"does NOT fit: {gib(est.required_bytes - est.budget_bytes)} over the budget"
        verdict += " (more hosts, a smaller max_model_len, an fp8 KV cache or a smaller quant would help)"
    lines.append(f"  {'verdict':<12} {verdict}")
    lines += [f"  note: {note}" for note in est.notes]
    return "\n".join(lines)
