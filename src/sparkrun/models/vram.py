"""Does a model fit? A per-host memory estimate for a DGX Spark cluster (pure; inputs come from `memory_facts`).

Per host (one GPU per Spark, so a tensor- or pipeline-parallel rank is a host):

    weights      checkpoint bytes / (tp x pp)        (llama.cpp RPC: / nodes, layers are spread)
    KV cache     one sequence of max_model_len tokens (vLLM and SGLang refuse to start without it; llama.cpp
                 allocates its whole context, `--ctx-size`); see `kv.py`
    activations  vLLM/SGLang profile a forward pass of max_num_batched_tokens: T x (8 h + 6 i / tp) bytes of
                 hidden states and MLP intermediates + max_num_seqs x vocab x 4 bytes of fp32 logits;
                 llama.cpp's compute buffer: ubatch (512) x (vocab + 8 h) x 4 bytes
    CUDA graphs  0.5 GiB (vLLM/SGLang capture; 0 with enforce_eager / disable_cuda_graph; llama.cpp: 0)
    runtime      1 GiB CUDA context + allocator + workspaces (llama.cpp 0.5 GiB), + 0.5 GiB NCCL buffers on >1 host

The budget is the host's memory as CUDA reports it times the memory fraction the engine may use:
`gpu_memory_utilization` (vLLM), `mem_fraction_static` (SGLang), default 0.9 (llama.cpp has no such setting; 0.9
leaves the OS its share of the unified memory). A DGX Spark has 128 GB of LPDDR5x; CUDA reports 121.6 GiB on GB10
(vLLM logs "121.63 GiB" / "121.69 GiB" total on DGX Spark; the older tool assumed 121 GiB), so GB10_MEMORY_BYTES
is 121.6 GiB. Whatever the budget leaves after weights, activations, graphs and runtime is KV cache: the estimate
reports how many tokens that holds and how many full-length sequences run at once.
These are estimates; the engine's own profiling at start-up is the final word.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from sparkrun.models.facts import ModelFacts
from sparkrun.models.kv import kv_bytes_per_token_layer, layers_per_rank, sequence_kv_bytes
from sparkrun.models.vram_table import render_table

GIB: Final = 1024**3
GB10_MEMORY_BYTES: Final = int(121.6 * GIB)
DEFAULT_UTILIZATION: Final = 0.9
CUDA_GRAPH_BYTES: Final = GIB // 2
RUNTIME_BYTES: Final = {"vllm": GIB, "sglang": GIB, "llama-cpp": GIB // 2, "other": GIB}
NCCL_BYTES: Final = GIB // 2
DEFAULT_BATCHED_TOKENS: Final = {"vllm": 8192, "sglang": 8192, "llama-cpp": 512, "other": 8192}
DEFAULT_MAX_SEQS: Final = 256
LLAMA_CPP_DEFAULT_CTX: Final = 4096


def runtime_family(runtime: str) -> str:
    if runtime.startswith("vllm") or runtime in ("eugr-vllm", "vllm"):
        return "vllm"
    if runtime.startswith("sglang"):
        return "sglang"
    return "llama-cpp" if runtime.startswith("llama") else "other"


@dataclass(frozen=True)
class WeightsSummary:
    total_bytes: int  # all weight files the engine loads (incl. a GGUF projector)
    parameters: int | None = None
    by_dtype: Mapping[str, int] = field(default_factory=dict)  # parameters per dtype (safetensors headers)
    source: str = "file sizes"


@dataclass(frozen=True)
class VramRequest:
    runtime: str
    tp: int = 1
    pp: int = 1
    nodes: int | None = None  # llama.cpp: hosts the layers are spread over (default tp x pp)
    max_model_len: int | None = None
    kv_cache_dtype: str = "auto"
    kv_cache_dtype_v: str | None = None  # llama.cpp --cache-type-v when it differs from K
    gpu_memory_utilization: float | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    enforce_eager: bool = False
    host_memory_bytes: int = GB10_MEMORY_BYTES

    @property
    def family(self) -> str:
        return runtime_family(self.runtime)

    @property
    def hosts(self) -> int:
        return self.nodes or self.tp * self.pp


@dataclass(frozen=True)
class VramEstimate:
    model: str
    runtime: str
    hosts: int
    tp: int
    pp: int
    max_model_len: int
    kv_cache_dtype: str
    weights_bytes: int  # per host, as every figure below
    kv_cache_bytes: int
    kv_per_token_bytes: float
    activation_bytes: int
    cuda_graph_bytes: int
    runtime_bytes: int
    host_memory_bytes: int
    utilization: float
    weights: WeightsSummary
    notes: tuple[str, ...] = ()

    @property
    def required_bytes(self) -> int:
        return (
            self.weights_bytes
            + self.kv_cache_bytes
            + self.activation_bytes
            + self.cuda_graph_bytes
            + self.runtime_bytes
        )

    @property
    def budget_bytes(self) -> int:
        return int(self.host_memory_bytes * self.utilization)

    @property
    def fits(self) -> bool:
        return self.required_bytes <= self.budget_bytes

    @property
    def kv_room_bytes(self) -> int:
        """What the budget leaves for KV cache once weights, activations, graphs and runtime are in."""
        return self.budget_bytes - (self.required_bytes - self.kv_cache_bytes)

    @property
    def kv_capacity_tokens(self) -> int:
        return max(0, int(self.kv_room_bytes / self.kv_per_token_bytes)) if self.kv_per_token_bytes else 0

    @property
    def max_concurrent_sequences(self) -> float:
        return self.kv_room_bytes / self.kv_cache_bytes if self.kv_cache_bytes > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "runtime": self.runtime,
            "hosts": self.hosts,
            "tp": self.tp,
            "pp": self.pp,
            "max_model_len": self.max_model_len,
            "kv_cache_dtype": self.kv_cache_dtype,
            "per_host": {
                "weights": self.weights_bytes,
                "kv_cache": self.kv_cache_bytes,
                "activations": self.activation_bytes,
                "cuda_graphs": self.cuda_graph_bytes,
                "runtime": self.runtime_bytes,
                "total": self.required_bytes,
            },
            "budget": self.budget_bytes,
            "host_memory": self.host_memory_bytes,
            "utilization": self.utilization,
            "fits": self.fits,
            "kv_per_token": self.kv_per_token_bytes,
            "kv_capacity_tokens": self.kv_capacity_tokens,
            "max_concurrent_sequences": round(self.max_concurrent_sequences, 2),
            "weights_total": self.weights.total_bytes,
            "parameters": self.weights.parameters,
            "weights_source": self.weights.source,
            "notes": list(self.notes),
        }

    def table(self) -> str:
        return render_table(self)


def _activation_bytes(facts: ModelFacts, request: VramRequest) -> int:
    family = request.family
    tokens = request.max_num_batched_tokens or DEFAULT_BATCHED_TOKENS[family]
    if family == "llama-cpp":
        return int(tokens * (facts.vocab_size + 8 * facts.hidden_size) * 4)
    seqs = min(request.max_num_seqs or DEFAULT_MAX_SEQS, tokens)
    hidden = tokens * (8 * facts.hidden_size + 6 * facts.intermediate_size / max(request.tp, 1))
    return int(hidden + seqs * facts.vocab_size * 4)


def _context(facts: ModelFacts, request: VramRequest) -> int:
    if request.max_model_len:
        return request.max_model_len
    if request.family == "llama-cpp":
        return LLAMA_CPP_DEFAULT_CTX
    return int(facts.max_position or 8192)


def _kv_for_context(facts: ModelFacts, request: VramRequest, tokens: int) -> int:
    if request.family == "llama-cpp":  # RPC: layers (and their cache) spread over the nodes; one cache of ctx cells
        share = max(request.hosts, 1)
        return int(
            sequence_kv_bytes(facts, tokens, kv_dtype=request.kv_cache_dtype, kv_dtype_v=request.kv_cache_dtype_v)
            / share
        )
    return int(sequence_kv_bytes(facts, tokens, tp=request.tp, pp=request.pp, kv_dtype=request.kv_cache_dtype))


def _kv_per_token(facts: ModelFacts, request: VramRequest) -> float:
    """Bytes per cached token on one host (full-attention layers: what long contexts cost)."""
    if request.family == "llama-cpp":
        per_layer = kv_bytes_per_token_layer(facts, 1, request.kv_cache_dtype, request.kv_cache_dtype_v)
        return per_layer * facts.layers.attention / max(request.hosts, 1)
    per_layer = kv_bytes_per_token_layer(facts, request.tp, request.kv_cache_dtype)
    return per_layer * layers_per_rank(facts.layers.attention, request.pp)


def _kv_label(facts: ModelFacts, request: VramRequest) -> str:
    label = request.kv_cache_dtype
    if label.lower() == "auto":
        label = f"auto = {'f16' if request.family == 'llama-cpp' else facts.dtype}"
    if request.kv_cache_dtype_v and request.kv_cache_dtype_v != request.kv_cache_dtype:
        label += f" (V: {request.kv_cache_dtype_v})"
    return label


def estimate_vram(model: str, facts: ModelFacts, weights: WeightsSummary, request: VramRequest) -> VramEstimate:
    """The per-host estimate and verdict for `model` served as `request` says."""
    family = request.family
    hosts = max(request.hosts, 1)
    context = _context(facts, request)
    graphs = 0 if request.enforce_eager or family in ("llama-cpp",) else CUDA_GRAPH_BYTES
    runtime = RUNTIME_BYTES[family] + (NCCL_BYTES if hosts > 1 and family != "llama-cpp" else 0)
    notes = list(facts.notes)
    if facts.max_position and context > int(facts.max_position):
        notes.append(f"max_model_len {context} is longer than the model's {facts.max_position} positions")
    if facts.layers.sliding:
        notes.append(f"{facts.layers.sliding} of {facts.num_layers} layers use a {facts.layers.window}-token window")
    if facts.layers.recurrent:
        notes.append(f"{facts.layers.recurrent} recurrent layers keep a fixed state per sequence")
    return VramEstimate(
        model=model,
        runtime=request.runtime,
        hosts=hosts,
        tp=request.tp,
        pp=request.pp,
        max_model_len=context,
        kv_cache_dtype=_kv_label(facts, request),
        weights_bytes=math.ceil(weights.total_bytes / hosts),
        kv_cache_bytes=_kv_for_context(facts, request, context),
        kv_per_token_bytes=_kv_per_token(facts, request),
        activation_bytes=_activation_bytes(facts, request),
        cuda_graph_bytes=graphs,
        runtime_bytes=runtime,
        host_memory_bytes=request.host_memory_bytes,
        utilization=request.gpu_memory_utilization or DEFAULT_UTILIZATION,
        weights=weights,
        notes=tuple(notes),
    )
