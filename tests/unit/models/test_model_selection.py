"""Which repo files a runtime reads: safetensors selection, GGUF quant selection (llama.cpp's rules), recipe
patterns and model references. Pure functions over path lists shaped like real repos."""

from __future__ import annotations

import pytest

from sparkrun.models.errors import ModelError
from sparkrun.models.ref import ModelRef, parse_model_ref
from sparkrun.models.selection import apply_patterns, select_checkpoint_files, select_gguf_files

# Shaped like meta-llama/Llama-3.1-8B-Instruct (HF format + original/ Meta checkpoint) plus typical noise.
LLAMA_REPO = [
    ".gitattributes",
    "LICENSE",
    "README.md",
    "USE_POLICY.md",
    "config.json",
    "generation_config.json",
    "model-00001-of-00004.safetensors",
    "model-00002-of-00004.safetensors",
    "model-00003-of-00004.safetensors",
    "model-00004-of-00004.safetensors",
    "model.safetensors.index.json",
    "original/consolidated.00.pth",
    "original/params.json",
    "original/tokenizer.model",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "pytorch_model-00001-of-00002.bin",
    "pytorch_model-00002-of-00002.bin",
    "pytorch_model.bin.index.json",
    "onnx/model.onnx",
    "onnx/model.onnx_data",
    "assets/arch.png",
    "flax_model.msgpack",
    "tf_model.h5",
]
SHARDS = [f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)]

# Shaped like unsloth/Qwen3-30B-A3B-GGUF: many quants at the top, big ones split in subdirectories, projectors.
GGUF_REPO = [
    "README.md",
    "Qwen3-30B-A3B-Q2_K.gguf",
    "Qwen3-30B-A3B-Q4_K_M.gguf",
    "Qwen3-30B-A3B-UD-Q4_K_XL.gguf",
    "Qwen3-30B-A3B-Q8_0.gguf",
    "BF16/Qwen3-30B-A3B-BF16-00001-of-00002.gguf",
    "BF16/Qwen3-30B-A3B-BF16-00002-of-00002.gguf",
    "mmproj-F16.gguf",
    "mmproj-BF16.gguf",
    "mmproj-F32.gguf",
    "imatrix_unsloth.gguf",
    "Qwen3-30B-A3B-mtp-Q8_0.gguf",
]


def test_safetensors_runtime_reads_shards_config_and_tokenizer_only() -> None:
    picked = select_checkpoint_files(LLAMA_REPO, index_files=SHARDS)
    assert set(SHARDS) <= set(picked)
    assert {
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "model.safetensors.index.json",
    } <= set(picked)
    never = [p for p in picked if p.endswith((".bin", ".pth", ".onnx", ".onnx_data", ".msgpack", ".h5", ".png"))]
    assert never == []
    assert not any(p.startswith(("original/", "onnx/")) for p in picked)


def test_bin_weights_are_used_only_when_there_are_no_safetensors() -> None:
    repo = ["config.json", "pytorch_model.bin", "training_args.bin", "tokenizer.json", "model.onnx"]
    assert select_checkpoint_files(repo) == ["config.json", "pytorch_model.bin", "tokenizer.json"]


def test_safetensors_the_index_does_not_list_are_duplicates() -> None:
    repo = ["config.json", "consolidated.safetensors", "params.json", "model.safetensors.index.json", *SHARDS]
    picked = select_checkpoint_files(repo, index_files=SHARDS)
    assert "consolidated.safetensors" not in picked
    assert set(SHARDS) <= set(picked)


def test_mistral_load_format_reads_the_consolidated_checkpoint() -> None:
    repo = ["config.json", "consolidated.safetensors", "params.json", "tekken.json", *SHARDS]
    picked = select_checkpoint_files(repo, index_files=SHARDS, load_format="mistral")
    assert "consolidated.safetensors" in picked
    assert not set(SHARDS) & set(picked)
    assert {"params.json", "tekken.json"} <= set(picked)


def test_a_repo_with_only_the_consolidated_format_still_has_weights() -> None:
    assert "consolidated.safetensors" in select_checkpoint_files(["consolidated.safetensors", "params.json"])


def test_a_gguf_only_repo_is_refused_for_a_safetensors_runtime_with_a_hint() -> None:
    with pytest.raises(ModelError, match="no safetensors") as err:
        select_checkpoint_files(GGUF_REPO)
    assert "llama-cpp" in (err.value.hint or "")


@pytest.mark.parametrize(
    ("quant", "primary"),
    [
        ("Q8_0", "Qwen3-30B-A3B-Q8_0.gguf"),
        ("q8_0", "Qwen3-30B-A3B-Q8_0.gguf"),  # llama.cpp matches the tag case-insensitively
        ("UD-Q4_K_XL", "Qwen3-30B-A3B-UD-Q4_K_XL.gguf"),
        (None, "Qwen3-30B-A3B-Q4_K_M.gguf"),  # no tag: Q4_K_M first
    ],
)
def test_gguf_quant_tag_picks_the_file_llama_cpp_would(quant: str | None, primary: str) -> None:
    assert select_gguf_files(GGUF_REPO, quant).primary == primary


def test_a_split_gguf_brings_every_part_in_order() -> None:
    pick = select_gguf_files(GGUF_REPO, "BF16")
    assert pick.primary == "BF16/Qwen3-30B-A3B-BF16-00001-of-00002.gguf"
    assert pick.parts == ("BF16/Qwen3-30B-A3B-BF16-00001-of-00002.gguf", "BF16/Qwen3-30B-A3B-BF16-00002-of-00002.gguf")


def test_without_q4_k_m_the_default_is_q8_0_then_the_first_model_file() -> None:
    assert select_gguf_files(["m-Q8_0.gguf", "m-Q2_K.gguf"], None).primary == "m-Q8_0.gguf"
    assert select_gguf_files(["mmproj-F16.gguf", "m-IQ2_XS.gguf", "m-Q2_K.gguf"], None).primary == "m-IQ2_XS.gguf"


def test_the_projector_is_the_one_closest_in_bits_to_the_model() -> None:
    # 16 bits is closest to 8 among 16/16/32; of the two 16-bit ones the first in path order wins (as in llama.cpp).
    assert select_gguf_files(GGUF_REPO, "Q8_0").mmproj == "mmproj-BF16.gguf"
    assert select_gguf_files(GGUF_REPO, "Q2_K").mmproj == "mmproj-BF16.gguf"
    with_q8 = [*GGUF_REPO, "mmproj-Q8_0.gguf"]
    assert select_gguf_files(with_q8, "Q8_0").mmproj == "mmproj-Q8_0.gguf"
    assert select_gguf_files(with_q8, None).mmproj == "mmproj-Q8_0.gguf"  # Q4_K_M: 4 bits, Q8_0 is closest
    assert select_gguf_files(with_q8, "BF16").mmproj == "mmproj-BF16.gguf"
    assert select_gguf_files(GGUF_REPO, "Q8_0", include_mmproj=False).mmproj is None


def test_a_projector_in_another_directory_is_not_used() -> None:
    repo = ["a/m-Q8_0.gguf", "b/mmproj-F16.gguf"]
    assert select_gguf_files(repo, "Q8_0").mmproj is None
    assert select_gguf_files([*repo, "mmproj-F32.gguf"], "Q8_0").mmproj == "mmproj-F32.gguf"


def test_sidecar_files_are_never_the_model() -> None:
    with pytest.raises(ModelError, match="no GGUF model file"):
        select_gguf_files(["mmproj-F16.gguf", "imatrix.gguf", "m-mtp-Q8_0.gguf"], None)


def test_an_unknown_quant_lists_the_ones_the_repo_has() -> None:
    with pytest.raises(ModelError, match="no quant 'Q5_K_M'") as err:
        select_gguf_files(GGUF_REPO, "Q5_K_M")
    assert "Q4_K_M" in (err.value.hint or "") and "Q8_0" in (err.value.hint or "")


def test_a_split_with_a_missing_part_is_refused() -> None:
    with pytest.raises(ModelError, match="split into 3 parts"):
        select_gguf_files(["m-Q8_0-00001-of-00003.gguf", "m-Q8_0-00002-of-00003.gguf"], "Q8_0")


def test_allow_patterns_replace_the_selection_and_ignore_patterns_remove_from_it() -> None:
    selected = select_checkpoint_files(LLAMA_REPO, index_files=SHARDS)
    assert apply_patterns(LLAMA_REPO, selected, ["original/"], None) == [
        "original/consolidated.00.pth",
        "original/params.json",
        "original/tokenizer.model",
    ]
    trimmed = apply_patterns(LLAMA_REPO, selected, None, ["*.md", "tokenizer*"])
    assert "README.md" not in trimmed and "tokenizer.json" not in trimmed and "config.json" in trimmed


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("Qwen/Qwen3-1.7B", ModelRef("Qwen/Qwen3-1.7B")),
        ("Qwen/Qwen3-1.7B-GGUF:Q8_0", ModelRef("Qwen/Qwen3-1.7B-GGUF", "Q8_0")),
        ("gpt2", ModelRef("gpt2")),
        ("/models/x.gguf", None),
        ("~/gguf/x.gguf", None),
    ],
)
def test_model_references_parse(text: str, ref: ModelRef | None) -> None:
    assert parse_model_ref(text) == ref


@pytest.mark.parametrize("text", ["a/b/c", "org/na--me", "org/../x", "org/name:", "bad name", "org/name:Q8 0"])
def test_malformed_model_references_are_refused(text: str) -> None:
    with pytest.raises(ModelError, match="not a Hugging Face repo id"):
        parse_model_ref(text)


def test_the_cache_folder_name_keeps_both_parts_of_the_repo_id() -> None:
    # The older tool's bug #291 turned org/name into models--org-name.
    assert ModelRef("deepseek-ai/DeepSeek-V3").folder == "models--deepseek-ai--DeepSeek-V3"
