"""The architecture facts memory depends on, from a Hugging Face `config.json`, GGUF metadata or a recipe's
`metadata:` block (pure functions; the inputs are cached or fetched elsewhere).

Per token and layer the KV cache holds K and V for the layer's KV heads (`num_key_value_heads`, GQA), or one latent
vector for multi-head latent attention (DeepSeek's MLA: `kv_lora_rank + qk_rope_head_dim`, shared by K and V).
Layers differ: full attention keeps every token, sliding-window layers at most `window` tokens per sequence,
recurrent layers (Mamba, Gated DeltaNet "linear attention") a fixed state per sequence, MLP-only layers nothing.
Layer kinds come from `layer_types`, `hybrid_override_pattern` (Nemotron-H), `attn_layer_period/offset` (Jamba),
`full_attention_interval` (Qwen3-Next), `sliding_window_pattern` / the model type (Gemma 2/3), or `sliding_window`
with `use_sliding_window` not false (Mistral 7B); multimodal configs are read from `text_config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sparkrun.models.gguf import ArrayInfo, GgufMetadata

DTYPE_BYTES: Final = {
    "float32": 4,
    "float": 4,
    "fp32": 4,
    "bfloat16": 2,
    "bf16": 2,
    "float16": 2,
    "fp16": 2,
    "half": 2,
    "f16": 2,
    "f32": 4,
}
FULL_KINDS: Final = frozenset({"full_attention", "attention", "global", "global_attention", "full"})
SLIDING_KINDS: Final = frozenset({"sliding_attention", "sliding", "local", "local_attention", "chunked_attention"})
RECURRENT_KINDS: Final = frozenset(
    {"linear_attention", "mamba", "mamba2", "ssm", "recurrent", "conv", "deltanet", "gated_deltanet", "short_conv"}
)
# GGUF architectures whose sliding-window layout llama.cpp hard-codes: one full layer in every N.
GGUF_SWA_PERIOD: Final = {"gemma2": 2, "gemma3": 6, "gpt-oss": 2, "cohere2": 4, "gemma3n": 5}
# config.json model types whose sliding-window layout is the class default when `sliding_window_pattern` is absent.
CONFIG_SWA_PERIOD: Final = {"gemma2": 2, "gemma3": 6, "gemma3_text": 6, "cohere2": 4}


@dataclass(frozen=True)
class LayerKinds:
    full: int
    sliding: int = 0
    window: int | None = None
    recurrent: int = 0

    @property
    def attention(self) -> int:
        return self.full + self.sliding


@dataclass(frozen=True)
class ModelFacts:
    num_layers: int
    num_kv_heads: int
    head_dim_k: int
    head_dim_v: int
    layers: LayerKinds
    dtype: str = "bfloat16"
    mla_latent_dim: int | None = None  # kv_lora_rank + qk_rope_head_dim
    mla_rope_dim: int = 0  # qk_rope_head_dim (the part of the latent that stays 16-bit in fp8_ds_mla)
    recurrent_state_elems: int = 0  # state elements per sequence per recurrent layer (split across TP)
    state_bytes: int = 0  # bytes per state element (0: the model's dtype)
    hidden_size: int = 0
    intermediate_size: int = 0
    vocab_size: int = 0
    max_position: int | None = None
    source: str = "config.json"
    notes: tuple[str, ...] = ()

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES.get(self.dtype.lower(), 2)


def _first(config: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    for key in keys:
        value = config.get(key)
        if value is not None:
            return value
    return default


def _count_kinds(kinds: list[str], window: int | None) -> LayerKinds:
    lowered = [str(k).lower() for k in kinds]
    return LayerKinds(
        full=sum(k in FULL_KINDS for k in lowered),
        sliding=sum(k in SLIDING_KINDS for k in lowered),
        window=window,
        recurrent=sum(k in RECURRENT_KINDS for k in lowered),
    )


def _periodic(layers: int, period: int, window: int | None, *, offset: int | None = None) -> LayerKinds:
    """One full-attention layer in every `period` (at `offset`, default the last of each period), others sliding."""
    at = period - 1 if offset is None else offset
    full = sum(1 for i in range(layers) if i % period == at)
    return LayerKinds(full=full, sliding=layers - full, window=window)


def _hybrid_kinds(cfg: Mapping[str, Any], layers: int) -> LayerKinds | None:
    """Attention + recurrent (or MLP-only) layers, as hybrid models describe them."""
    if isinstance(cfg.get("hybrid_override_pattern"), str):  # Nemotron-H: M mamba, * attention, -/E MLP or MoE
        pattern = cfg["hybrid_override_pattern"]
        return LayerKinds(full=pattern.count("*"), recurrent=pattern.count("M"))
    if cfg.get("attn_layer_period"):  # Jamba
        kinds = _periodic(layers, int(cfg["attn_layer_period"]), None, offset=int(cfg.get("attn_layer_offset", 0)))
        return LayerKinds(full=kinds.full, recurrent=kinds.sliding)
    if cfg.get("full_attention_interval"):  # Qwen3-Next: linear attention, every Nth layer full
        kinds = _periodic(layers, int(cfg["full_attention_interval"]), None)
        return LayerKinds(full=kinds.full, recurrent=kinds.sliding)
    return None


def _layer_kinds(cfg: Mapping[str, Any], layers: int) -> LayerKinds:
    window = _first(cfg, "sliding_window", "attention_chunk_size")
    if isinstance(cfg.get("layer_types"), list):
        return _count_kinds(cfg["layer_types"], window)
    hybrid = _hybrid_kinds(cfg, layers)
    if hybrid is not None:
        return hybrid
    period = cfg.get("sliding_window_pattern") or CONFIG_SWA_PERIOD.get(str(cfg.get("model_type")))
    if window and period:
        return _periodic(layers, int(period), int(window))
    if window and cfg.get("use_sliding_window", True) is not False:
        return LayerKinds(full=0, sliding=layers, window=int(window))
    return LayerKinds(full=layers)


def _recurrent_state(cfg: Mapping[str, Any]) -> int:
    """State elements per sequence of one recurrent layer (0 when the config does not say)."""
    if cfg.get("mamba_num_heads") and cfg.get("ssm_state_size"):  # Mamba2 (Nemotron-H, Granite, Bamba, Falcon-H1)
        heads, head_dim = int(cfg["mamba_num_heads"]), int(_first(cfg, "mamba_head_dim", default=64))
        state, groups = int(cfg["ssm_state_size"]), int(_first(cfg, "n_groups", "mamba_n_groups", default=1))
        conv = int(_first(cfg, "conv_kernel", "mamba_d_conv", default=4)) - 1
        return heads * head_dim * state + conv * (heads * head_dim + 2 * groups * state)
    if cfg.get("linear_num_value_heads"):  # Gated DeltaNet (Qwen3-Next, Qwen3.5)
        v_heads, k_heads = int(cfg["linear_num_value_heads"]), int(cfg.get("linear_num_key_heads", 0))
        k_dim, v_dim = int(cfg.get("linear_key_head_dim", 128)), int(cfg.get("linear_value_head_dim", 128))
        conv = int(cfg.get("linear_conv_kernel_dim", 4)) - 1
        return v_heads * k_dim * v_dim + conv * (2 * k_heads * k_dim + v_heads * v_dim)
    if cfg.get("mamba_d_state"):  # Mamba1 (Jamba)
        inner = int(cfg.get("mamba_expand", 2)) * int(cfg["hidden_size"])
        return inner * int(cfg["mamba_d_state"]) + (int(cfg.get("mamba_d_conv", 4)) - 1) * inner
    return 0


def facts_from_config(config: Mapping[str, Any]) -> ModelFacts:
    """ModelFacts from a Hugging Face config.json (its `text_config` for multimodal models)."""
    cfg = config.get("text_config") if isinstance(config.get("text_config"), Mapping) else config
    assert isinstance(cfg, Mapping)
    layers = int(_first(cfg, "num_hidden_layers", "n_layer", "num_layers", default=0))
    heads = int(_first(cfg, "num_attention_heads", "n_head", default=1))
    hidden = int(_first(cfg, "hidden_size", "n_embd", "d_model", default=0))
    kv_heads = 1 if cfg.get("multi_query") else int(_first(cfg, "num_key_value_heads", "n_head_kv", default=heads))
    head_dim = int(_first(cfg, "head_dim", default=hidden // max(heads, 1)))
    latent, rope = None, 0
    if cfg.get("kv_lora_rank"):
        rope = int(cfg.get("qk_rope_head_dim", 64))
        latent = int(cfg["kv_lora_rank"]) + rope
    notes = []
    quant = (config.get("quantization_config") or {}).get("quant_method")
    if quant:
        notes.append(f"checkpoint quantization: {quant}")
    kinds = _layer_kinds(cfg, layers)
    state = _recurrent_state(cfg)
    if kinds.recurrent and not state:
        notes.append("recurrent layers without known state size: their state is not counted")
    return ModelFacts(
        num_layers=layers,
        num_kv_heads=kv_heads,
        head_dim_k=head_dim,
        head_dim_v=int(_first(cfg, "v_head_dim", default=head_dim)) if latent is None else head_dim,
        layers=kinds,
        dtype=str(_first(cfg, "torch_dtype", "dtype", default=config.get("torch_dtype") or "bfloat16")),
        mla_latent_dim=latent,
        mla_rope_dim=rope,
        recurrent_state_elems=state,
        hidden_size=hidden,
        intermediate_size=int(_first(cfg, "intermediate_size", "ffn_dim", "n_inner", default=4 * hidden)),
        vocab_size=int(_first(cfg, "vocab_size", default=config.get("vocab_size") or 0)),
        max_position=_first(cfg, "max_position_embeddings", "n_positions", "max_seq_len", "seq_length"),
        source="config.json",
        notes=tuple(notes),
    )


def _as_list(value: Any, layers: int) -> list[int]:
    if isinstance(value, list):
        return [int(v) for v in value]
    return [int(value)] * layers if value is not None else []


def _gguf_kinds(meta: GgufMetadata, layers: int, kv_per_layer: list[int]) -> LayerKinds:
    """Layers with 0 KV heads hold no KV cache: recurrent layers when the model has an SSM, else shared-KV layers."""
    no_kv = sum(1 for h in kv_per_layer if h == 0)
    recurrent = no_kv if meta.arch_value("ssm.state_size") else 0
    attention = layers - no_kv
    window = meta.arch_value("attention.sliding_window")
    pattern = meta.arch_value("attention.sliding_window_pattern")
    if window and isinstance(pattern, list):  # one flag per layer, true = sliding window
        sliding = sum(1 for flag, heads in zip(pattern, kv_per_layer, strict=False) if flag and heads)
        return LayerKinds(full=attention - sliding, sliding=sliding, window=int(window), recurrent=recurrent)
    period = int(pattern) if isinstance(pattern, int) and pattern > 0 else GGUF_SWA_PERIOD.get(meta.architecture)
    if window and period:
        kinds = _periodic(attention, period, int(window))
        return LayerKinds(kinds.full, kinds.sliding, kinds.window, recurrent)
    return LayerKinds(full=attention, recurrent=recurrent)


def facts_from_gguf(meta: GgufMetadata) -> ModelFacts:
    """ModelFacts from GGUF metadata (`{arch}.block_count`, `.attention.head_count_kv`, ...)."""
    layers = int(meta.arch_value("block_count", 0))
    heads = _as_list(meta.arch_value("attention.head_count", 1), layers) or [1]
    pure_ssm = meta.arch_value("ssm.state_size") and meta.arch_value("attention.head_count_kv") is None
    kv_per_layer = (
        [0] * layers if pure_ssm else _as_list(meta.arch_value("attention.head_count_kv", max(heads)), layers)
    )
    hidden = int(meta.arch_value("embedding_length", 0))
    head_k = int(meta.arch_value("attention.key_length", hidden // max(*heads, 1)))
    latent, rope = None, 0
    if meta.arch_value("attention.kv_lora_rank"):
        rope = int(meta.arch_value("rope.dimension_count", 64))
        latent = int(meta.arch_value("attention.kv_lora_rank")) + rope
    state = 0
    if meta.arch_value("ssm.state_size"):
        inner, d_state = int(meta.arch_value("ssm.inner_size", 0)), int(meta.arch_value("ssm.state_size"))
        groups, conv = int(meta.arch_value("ssm.group_count", 1)), int(meta.arch_value("ssm.conv_kernel", 4)) - 1
        state = inner * d_state + conv * (inner + 2 * groups * d_state)
    vocab = meta.metadata.get("tokenizer.ggml.tokens")
    ff = meta.arch_value("feed_forward_length", 0)
    return ModelFacts(
        num_layers=layers,
        num_kv_heads=max(kv_per_layer or [0]),
        head_dim_k=head_k,
        head_dim_v=int(meta.arch_value("attention.value_length", head_k)),
        layers=_gguf_kinds(meta, layers, kv_per_layer),
        dtype="float16",  # llama.cpp's default KV cache type
        state_bytes=4,  # llama.cpp keeps recurrent state in f32
        mla_latent_dim=latent,
        mla_rope_dim=rope,
        recurrent_state_elems=state,
        hidden_size=hidden,
        intermediate_size=int(max(ff) if isinstance(ff, list) else ff),
        vocab_size=vocab.length if isinstance(vocab, ArrayInfo) else int(meta.arch_value("vocab_size", 0)),
        max_position=meta.arch_value("context_length"),
        source="gguf",
    )


def facts_from_recipe_metadata(metadata: Mapping[str, Any]) -> ModelFacts | None:
    """The older recipe format's `metadata: {num_layers, num_kv_heads, head_dim, model_dtype}` (used when neither
    config.json nor GGUF metadata is at hand)."""
    try:
        layers, kv_heads, head_dim = (int(metadata[k]) for k in ("num_layers", "num_kv_heads", "head_dim"))
    except (KeyError, TypeError, ValueError):
        return None
    dtype = str(metadata.get("model_dtype") or "bfloat16")
    return ModelFacts(
        num_layers=layers,
        num_kv_heads=kv_heads,
        head_dim_k=head_dim,
        head_dim_v=head_dim,
        layers=LayerKinds(full=layers),
        dtype=dtype if dtype.lower() in DTYPE_BYTES else "bfloat16",
        source="recipe metadata",
    )
