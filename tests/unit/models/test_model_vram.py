"""Memory estimates against published figures, using the models' real config.json values (data/configs).

Published figures used:
- KV cache per token in BF16, Table 1 of "Insights into DeepSeek-V3: Scaling Challenges and Reflections on Hardware
  for AI Architectures" (arXiv:2505.09343): DeepSeek-V3 (MLA) 70.272 KB, Qwen-2.5 72B (GQA) 327.680 KB,
  LLaMA-3.1 405B (GQA) 516.096 KB.
- KV cache in FP16 per 1k tokens, Hugging Face blog "Llama 3.1 - 405B, 70B & 8B" (huggingface.co/blog/llama31,
  "Inference memory requirements"): 8B 0.125 GB, 70B 0.313 GB.
- Parameter counts shown on the Hub (safetensors metadata): Llama-3-8B 8.03 B (8,030,261,248), Llama-3.1-70B
  70.6 B; the same blog's weights table: 70B in FP16 needs 140 GB, more than one 128 GB DGX Spark.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sparkrun.models.facts import ModelFacts, facts_from_config, facts_from_recipe_metadata
from sparkrun.models.kv import kv_bytes_per_token, sequence_kv_bytes
from sparkrun.models.memory import summarize_safetensors_header, weights_from_headers
from sparkrun.models.vram import GB10_MEMORY_BYTES, GIB, VramRequest, WeightsSummary, estimate_vram
from sparkrun.models.vram_inputs import vram_request_from_settings

CONFIGS = Path(__file__).parent / "data" / "configs"


def config(name: str) -> dict[str, Any]:
    return json.loads((CONFIGS / f"{name}.json").read_text())


def facts(name: str) -> ModelFacts:
    return facts_from_config(config(name))


@pytest.mark.parametrize(
    ("model", "published_bytes"),
    [("deepseek-v3", 70_272), ("qwen2.5-72b", 327_680), ("llama-3.1-405b", 516_096)],
)
def test_kv_per_token_matches_the_deepseek_v3_paper(model: str, published_bytes: int) -> None:
    assert kv_bytes_per_token(facts(model), kv_dtype="bfloat16") == published_bytes


@pytest.mark.parametrize(("model", "gb_per_1k"), [("llama-3.1-8b", 0.125), ("llama-3.1-70b", 0.313)])
def test_kv_per_1k_tokens_matches_the_llama31_blog(model: str, gb_per_1k: float) -> None:
    assert kv_bytes_per_token(facts(model), kv_dtype="float16") * 1024 / GIB == pytest.approx(
        gb_per_1k, abs=0.00051
    )  # published to 3 decimals


def test_auto_kv_dtype_is_the_models_dtype_and_fp8_halves_it() -> None:
    llama = facts("llama-3.1-8b")
    assert kv_bytes_per_token(llama) == 131_072
    assert kv_bytes_per_token(llama, kv_dtype="fp8") == 65_536


def test_mla_latent_is_not_split_by_tensor_parallelism_but_gqa_heads_are() -> None:
    deepseek, llama = facts("deepseek-v3"), facts("llama-3.1-8b")
    assert kv_bytes_per_token(deepseek, tp=8) == kv_bytes_per_token(deepseek) == 61 * 576 * 2
    assert kv_bytes_per_token(llama, tp=2) == 131_072 / 2
    assert kv_bytes_per_token(llama, tp=16) == 32 * 1 * 128 * 2 * 2  # 8 KV heads on 16 ranks: one (replicated) each


def test_vllm_fp8_ds_mla_stores_656_bytes_per_token_and_layer() -> None:
    assert kv_bytes_per_token(facts("deepseek-v3"), kv_dtype="fp8_ds_mla") == 61 * 656


def test_pipeline_parallelism_splits_the_layers() -> None:
    assert kv_bytes_per_token(facts("qwen2.5-72b"), pp=3) == 327_680 / 80 * 27  # ceil(80 / 3) layers on a rank


def test_qwen2_sliding_window_is_ignored_when_disabled() -> None:
    assert facts("qwen2.5-72b").layers.sliding == 0


def test_alternating_sliding_window_layers_cap_long_sequences() -> None:
    gpt_oss = facts("gpt-oss-120b")
    assert (gpt_oss.layers.full, gpt_oss.layers.sliding, gpt_oss.layers.window) == (18, 18, 128)
    per_layer = 8 * 64 * 2 * 2
    assert sequence_kv_bytes(gpt_oss, 131_072) == per_layer * (18 * 131_072 + 18 * 128)


def test_gemma3_keeps_one_global_layer_in_six_by_default() -> None:
    gemma = facts("gemma-3-27b")  # text_config of a multimodal config, no sliding_window_pattern key
    assert (gemma.layers.full, gemma.layers.sliding, gemma.layers.window) == (10, 52, 1024)
    assert gemma.num_kv_heads == 16 and gemma.head_dim_k == 128


def test_hybrid_models_count_attention_and_recurrent_layers() -> None:
    qwen_next = facts("qwen3-next-80b")
    assert (qwen_next.layers.full, qwen_next.layers.recurrent) == (12, 36)
    assert qwen_next.recurrent_state_elems == 32 * 128 * 128 + 3 * (2 * 16 * 128 + 32 * 128)
    hybrid = facts("hybrid-mamba2")
    assert (hybrid.layers.full, hybrid.layers.recurrent) == (2, 5)
    one_seq = sequence_kv_bytes(hybrid, 1000)
    state = 5 * hybrid.recurrent_state_elems * 2
    assert one_seq == 2 * 1000 * 8 * 128 * 2 * 2 + state
    assert sequence_kv_bytes(hybrid, 1000, tp=2) == 2 * 1000 * 4 * 128 * 2 * 2 + state / 2


def llama_header(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A safetensors header with the tensor shapes a Llama config implies (what the Hub's files hold)."""
    h, i, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    kv = cfg["num_key_value_heads"] * h // cfg["num_attention_heads"]
    shapes = {"model.embed_tokens.weight": [v, h], "model.norm.weight": [h], "lm_head.weight": [v, h]}
    for n in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{n}."
        shapes |= {
            p + "q": [h, h],
            p + "k": [kv, h],
            p + "v": [kv, h],
            p + "o": [h, h],
            p + "gate": [i, h],
            p + "up": [i, h],
            p + "down": [h, i],
            p + "in_norm": [h],
            p + "post_norm": [h],
        }
    return {name: {"dtype": "BF16", "shape": shape} for name, shape in shapes.items()}


def test_weights_from_headers_count_the_published_parameters() -> None:
    weights = weights_from_headers([summarize_safetensors_header(llama_header(config("llama-3.1-8b")))])
    assert weights.parameters == 8_030_261_248
    assert weights.total_bytes == 2 * 8_030_261_248
    assert weights.by_dtype == {"BF16": 8_030_261_248}


def test_packed_quantized_weights_report_no_parameter_count() -> None:
    summary = summarize_safetensors_header(
        {"w": {"dtype": "U8", "shape": [4096, 2048]}, "s": {"dtype": "F8_E4M3", "shape": [4096, 256]}}
    )
    weights = weights_from_headers([summary])
    assert weights.parameters is None and weights.total_bytes == 4096 * 2048 + 4096 * 256


def llama70b() -> tuple[ModelFacts, WeightsSummary]:
    weights = weights_from_headers([summarize_safetensors_header(llama_header(config("llama-3.1-70b")))])
    assert weights.parameters == pytest.approx(70.6e9, rel=0.001)
    return facts("llama-3.1-70b"), weights


def test_llama_70b_in_bf16_does_not_fit_one_spark_but_fits_two() -> None:
    model_facts, weights = llama70b()
    assert weights.total_bytes > 140e9  # the blog's "140 GB" for FP16 weights
    one = estimate_vram("llama-70b", model_facts, weights, VramRequest("vllm", max_model_len=8192))
    assert not one.fits
    assert "does NOT fit" in one.table()
    two = estimate_vram("llama-70b", model_facts, weights, VramRequest("vllm", tp=2, max_model_len=8192))
    assert two.fits
    assert two.weights_bytes == weights.total_bytes / 2
    assert two.kv_cache_bytes == 8192 * 327_680 / 2
    assert two.budget_bytes == int(GB10_MEMORY_BYTES * 0.9)
    assert two.kv_capacity_tokens == int(two.kv_room_bytes / (327_680 / 2))


def test_the_table_shows_the_breakdown_and_the_verdict() -> None:
    model_facts, weights = llama70b()
    est = estimate_vram("meta-llama/Llama-3.1-70B", model_facts, weights, VramRequest("vllm", tp=2, max_model_len=8192))
    text = est.table()
    assert text.splitlines()[0] == "Memory per host for meta-llama/Llama-3.1-70B (vllm, 2 hosts: tp 2 x pp 1)"
    for label in ("weights", "KV cache", "activations", "CUDA graphs", "runtime", "total", "budget", "verdict"):
        assert f"  {label}" in text
    assert "70.55 B parameters BF16" in text and "fits:" in text
    assert json.loads(json.dumps(est.to_json()))["fits"] is True


def test_enforce_eager_drops_the_cuda_graph_memory() -> None:
    model_facts, weights = llama70b()
    eager = estimate_vram("m", model_facts, weights, VramRequest("vllm", tp=2, enforce_eager=True))
    assert eager.cuda_graph_bytes == 0


def test_the_serve_command_wins_over_the_settings() -> None:
    argv = ["vllm", "serve", "m", "--kv-cache-dtype", "fp8", "--max-model-len=32768", "-tp", "2", "--enforce-eager"]
    settings = {"kv_cache_dtype": "auto", "max_model_len": 8192, "gpu_memory_utilization": "0.8"}
    request = vram_request_from_settings("vllm-distributed", settings, argv)
    assert (request.kv_cache_dtype, request.max_model_len, request.tp) == ("fp8", 32768, 2)
    assert request.gpu_memory_utilization == 0.8 and request.enforce_eager


def test_llama_cpp_flags_set_the_context_and_both_cache_types() -> None:
    argv = ["llama-server", "-hf", "r:Q8_0", "-c", "16384", "-ctk", "q8_0", "--cache-type-v", "q4_0", "-ngl", "-1"]
    request = vram_request_from_settings("llama-cpp", {}, argv, nodes=2)
    assert (request.max_model_len, request.kv_cache_dtype, request.kv_cache_dtype_v) == (16384, "q8_0", "q4_0")
    assert request.hosts == 2


def test_recipe_metadata_stands_in_for_a_missing_config() -> None:
    meta = {"num_layers": 43, "num_kv_heads": 1, "head_dim": 512, "model_dtype": "fp8", "kv_dtype": "fp8"}
    stand_in = facts_from_recipe_metadata(meta)
    assert stand_in is not None and stand_in.source == "recipe metadata"
    assert kv_bytes_per_token(stand_in, kv_dtype="fp8") == 43 * 512 * 2
    assert facts_from_recipe_metadata({"num_layers": 4}) is None
