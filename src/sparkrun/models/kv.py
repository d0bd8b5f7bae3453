"""KV cache arithmetic (pure).

Per token and attention layer, on one tensor-parallel rank:
- GQA/MHA: `ceil(kv_heads / tp) * (head_dim_k * bytes_k + head_dim_v * bytes_v)` (KV heads are split across
  ranks; with fewer heads than ranks each rank keeps one);
- MLA: `(kv_lora_rank + qk_rope_head_dim) * bytes`, not split by tensor parallelism (every rank keeps the latent);
  vLLM's `fp8_ds_mla` stores the latent in fp8 with one fp32 scale per 128 values and the rope part in 16 bits
  (656 bytes per token and layer for DeepSeek V3.2).
Pipeline parallelism splits the layers: a rank holds `ceil(layers / pp)` of each kind. A sequence of L tokens
needs L entries in full-attention layers, `min(L, window)` in sliding-window layers and one fixed state per
recurrent layer.
"""

from __future__ import annotations

import math
from typing import Final

from sparkrun.models.errors import ModelError
from sparkrun.models.facts import ModelFacts

# Bytes per cached element for engine KV-cache dtypes (vLLM/SGLang `--kv-cache-dtype`, llama.cpp `--cache-type-k/v`;
# llama.cpp's block formats: q8_0 = 34 bytes per 32 values, q4_0 = 18, q4_1 = 20, q5_0 = 22, q5_1 = 24, iq4_nl = 18).
KV_DTYPE_BYTES: Final[dict[str, float]] = {
    "fp8": 1,
    "fp8_e4m3": 1,
    "fp8_e5m2": 1,
    "fp8_inc": 1,
    "int8": 1,
    "nvfp4": 0.5625,
    "bf16": 2,
    "bfloat16": 2,
    "fp16": 2,
    "float16": 2,
    "half": 2,
    "f16": 2,
    "float": 4,
    "float32": 4,
    "fp32": 4,
    "f32": 4,
    "q8_0": 34 / 32,
    "q4_0": 18 / 32,
    "q4_1": 20 / 32,
    "q5_0": 22 / 32,
    "q5_1": 24 / 32,
    "iq4_nl": 18 / 32,
}
AUTO_KV_DTYPES: Final = frozenset({"auto", "", "model"})
DS_MLA_FP8: Final = "fp8_ds_mla"


def kv_element_bytes(kv_dtype: str, facts: ModelFacts) -> float:
    """Bytes per element for a KV-cache dtype; `auto` means the model's dtype."""
    name = kv_dtype.strip().lower()
    if name in AUTO_KV_DTYPES:
        return facts.dtype_bytes
    if name == DS_MLA_FP8:
        return 1
    if name not in KV_DTYPE_BYTES:
        known = ", ".join(sorted(KV_DTYPE_BYTES))
        raise ModelError(f"unknown KV cache dtype {kv_dtype!r}", hint=f"one of: auto, {DS_MLA_FP8}, {known}")
    return KV_DTYPE_BYTES[name]


def kv_bytes_per_token_layer(facts: ModelFacts, tp: int, kv_dtype: str, kv_dtype_v: str | None = None) -> float:
    """Bytes one token costs in one attention layer on one tensor-parallel rank."""
    if facts.mla_latent_dim:
        if kv_dtype.strip().lower() == DS_MLA_FP8:
            nope = facts.mla_latent_dim - facts.mla_rope_dim
            return nope + nope / 128 * 4 + facts.mla_rope_dim * 2
        return facts.mla_latent_dim * kv_element_bytes(kv_dtype, facts)
    heads = math.ceil(facts.num_kv_heads / max(tp, 1))
    bytes_k = kv_element_bytes(kv_dtype, facts)
    bytes_v = kv_element_bytes(kv_dtype_v or kv_dtype, facts)
    return heads * (facts.head_dim_k * bytes_k + facts.head_dim_v * bytes_v)


def layers_per_rank(count: int, pp: int) -> int:
    return math.ceil(count / max(pp, 1))


def kv_bytes_per_token(facts: ModelFacts, *, tp: int = 1, pp: int = 1, kv_dtype: str = "auto") -> float:
    """KV bytes per token over every attention layer of one rank (the usual "KV cache per token" figure)."""
    return kv_bytes_per_token_layer(facts, tp, kv_dtype) * layers_per_rank(facts.layers.attention, pp)


def sequence_kv_bytes(
    facts: ModelFacts, tokens: int, *, tp: int = 1, pp: int = 1, kv_dtype: str = "auto", kv_dtype_v: str | None = None
) -> float:
    """KV cache (and recurrent state) one sequence of `tokens` tokens needs on one rank."""
    per_layer = kv_bytes_per_token_layer(facts, tp, kv_dtype, kv_dtype_v)
    kinds = facts.layers
    window_tokens = min(tokens, kinds.window or tokens)
    attention = per_layer * (
        layers_per_rank(kinds.full, pp) * tokens + layers_per_rank(kinds.sliding, pp) * window_tokens
    )
    state = (
        layers_per_rank(kinds.recurrent, pp)
        * facts.recurrent_state_elems
        / max(tp, 1)
        * (facts.state_bytes or facts.dtype_bytes)
    )
    return attention + state
