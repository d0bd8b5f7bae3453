"""The facts an estimate needs, read from the Hub stand-in without downloading weights (range reads of safetensors
headers and GGUF metadata), cached for offline use; and the GGUF reader on files the stand-in generates."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubstub.content import GgufValue, write_gguf
from hubstub.fixtures import GGUF, LLAMA, HubModels
from hubstub.presets import LlamaShape, gguf_metadata, gguf_tensors
from hubstub.server import HubStub
from sparkrun.models.errors import ModelError, ModelNotCachedError
from sparkrun.models.facts import facts_from_gguf
from sparkrun.models.gguf import ArrayInfo, NeedMoreBytes, parse_gguf_metadata, read_gguf_metadata
from sparkrun.models.manifest import ModelRequest, resolve_manifest
from sparkrun.models.memory import estimate_for_manifest, memory_facts
from sparkrun.models.vram import GIB, VramRequest

MIB = 1024 * 1024
# Qwen/Qwen3-1.7B's shape as its GGUF metadata gives it (28 blocks, 16 heads, 8 KV heads of 128, 151,936 tokens).
QWEN3_1_7B = LlamaShape(
    hidden=2048, intermediate=6144, layers=28, heads=16, kv_heads=8, vocab=151_936, max_position=40_960
)
TINY = LlamaShape(hidden=256, intermediate=512, layers=2, heads=2, kv_heads=1, vocab=64)


def qwen3_gguf(path: Path) -> Path:
    """Qwen3-1.7B's metadata (with a full-size vocabulary, ~4 MB of metadata) over tiny tensors."""
    meta = gguf_metadata("qwen3", QWEN3_1_7B, "Qwen3-1.7B")
    meta["tokenizer.ggml.tokens"] = GgufValue("arr", [f"qwen-token-{i:08d}" for i in range(151_936)], "str")
    write_gguf(path, meta, gguf_tensors(TINY, "Q8_0"), "qwen3")
    return path


def test_gguf_metadata_is_parsed_and_vocabularies_are_kept_as_lengths(tmp_path: Path) -> None:
    meta = parse_gguf_metadata(qwen3_gguf(tmp_path / "q.gguf").read_bytes())
    assert meta.version == 3 and meta.architecture == "qwen3"
    assert meta.arch_value("block_count") == 28 and meta.arch_value("attention.head_count_kv") == 8
    assert meta.metadata["tokenizer.ggml.tokens"] == ArrayInfo(8, 151_936)
    assert meta.tensor_count == len(gguf_tensors(TINY, "Q8_0"))


def test_a_short_prefix_asks_for_more_and_the_reader_doubles_its_window(tmp_path: Path) -> None:
    data = qwen3_gguf(tmp_path / "q.gguf").read_bytes()
    with pytest.raises(NeedMoreBytes):
        parse_gguf_metadata(data[: 1 * MIB])
    reads: list[tuple[int, int]] = []

    def fetch(start: int, end: int) -> bytes:
        reads.append((start, end))
        return data[start : end + 1]

    meta = read_gguf_metadata(fetch, len(data))
    assert meta.arch_value("context_length") == 40_960
    assert reads == [(0, 2 * MIB - 1), (2 * MIB, 4 * MIB - 1)]  # ~4 MB of metadata, 5 MB file: never read whole


def test_a_file_that_is_not_gguf_is_refused() -> None:
    with pytest.raises(ModelError, match="not a GGUF file"):
        parse_gguf_metadata(b"PK\x03\x04" + b"\0" * 64)


def test_gguf_facts_give_llama_cpps_kv_cache_size(tmp_path: Path) -> None:
    facts = facts_from_gguf(parse_gguf_metadata(qwen3_gguf(tmp_path / "q.gguf").read_bytes()))
    assert facts.vocab_size == 151_936 and facts.max_position == 40_960
    # 28 layers x 8 KV heads x 128 x (K + V) x 2 bytes (f16) = 112 KiB per token: 896 MiB for 8192 cells.
    from sparkrun.models.kv import sequence_kv_bytes

    assert sequence_kv_bytes(facts, 8192) == 896 * MIB
    assert sequence_kv_bytes(facts, 8192, kv_dtype="q8_0") == 896 * MIB * 34 / 64


def test_safetensors_facts_come_from_config_and_header_range_reads(hub: HubStub, hub_models: HubModels) -> None:
    manifest = resolve_manifest(ModelRequest(LLAMA, "vllm-distributed"))
    hub.stats.reset()
    facts, weights = memory_facts(manifest)
    assert facts.num_layers == 2 and facts.num_kv_heads == 2
    shard_reads = hub.requests(server="cdn", method="GET")  # LFS content comes from the CDN (after a 302)
    assert shard_reads and all(r.range is not None and r.status == 206 for r in shard_reads)
    weight_files = [f for f in manifest.files if f.path.endswith(".safetensors")]
    headers = sum(f.size for f in weight_files) - weights.total_bytes
    assert 0 < headers < 8 * 1024  # tensor data = file sizes minus the small headers
    assert weights.source == "safetensors headers" and weights.by_dtype.keys() == {"BF16"}


def test_facts_are_cached_so_an_offline_estimate_sends_nothing(hub: HubStub, hub_models: HubModels) -> None:
    manifest = resolve_manifest(ModelRequest(LLAMA, "vllm-distributed"))
    online = estimate_for_manifest(manifest, VramRequest("vllm-distributed", max_model_len=2048))
    hub.stats.reset()
    offline = estimate_for_manifest(manifest, VramRequest("vllm-distributed", max_model_len=2048), offline=True)
    assert offline == online and hub.stats.requests == []


def test_offline_without_cached_facts_falls_back_to_recipe_metadata_or_says_so(
    hub: HubStub, hub_models: HubModels
) -> None:
    manifest = resolve_manifest(ModelRequest(LLAMA, "vllm-distributed"))
    hub.stats.reset()
    with pytest.raises(ModelNotCachedError, match="no cached model config"):
        memory_facts(manifest, offline=True)
    facts, weights = memory_facts(
        manifest, offline=True, recipe_metadata={"num_layers": 2, "num_kv_heads": 2, "head_dim": 16}
    )
    assert facts.source == "recipe metadata" and weights.source == "file sizes"
    assert hub.stats.requests == []


def test_gguf_estimate_reads_metadata_by_range_and_counts_all_parts(
    hub: HubStub, hub_models: HubModels, tmp_path: Path
) -> None:
    hub.add_repo("test-org/qwen3-GGUF", {"Qwen3-1.7B-Q8_0.gguf": qwen3_gguf(tmp_path / "q.gguf")})
    manifest = resolve_manifest(ModelRequest("test-org/qwen3-GGUF:Q8_0", "llama-cpp"))
    estimate = estimate_for_manifest(manifest, VramRequest("llama-cpp", max_model_len=8192))
    assert estimate.kv_cache_bytes == 896 * MIB
    assert all(r.range for r in hub.requests(server="cdn"))
    split = resolve_manifest(ModelRequest(f"{GGUF}:Q8_0", "llama-cpp"))
    _, weights = memory_facts(split)
    assert weights.total_bytes == sum(f.size for f in split.files)  # both parts and the projector
    assert estimate.weights_bytes < GIB
