"""Test models for the Hub stand-in, generated deterministically into a directory.

- `write_llama_repo`: a Llama-architecture safetensors repo (config.json, tokenizer files, N shards + index) with
  the distractors real repos carry (pytorch_model.bin, original/*.pth, onnx/, consolidated.safetensors outside the
  index, README, images), so file selection is tested against realistic noise. Shape and shard count set the size:
  `LlamaShape.tiny()` is a few hundred KB, `LlamaShape.bench()` about 1.1 GB.
- `write_gguf_repo`: a GGUF repo with a single-file Q4_K_M, a Q8_0 split in two parts (in a subdirectory), two
  mmproj projectors, an imatrix file and a README.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from hubstub.content import GgufValue, Tensor, write_filler, write_gguf, write_safetensors


@dataclass(frozen=True)
class LlamaShape:
    hidden: int = 64
    intermediate: int = 128
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    vocab: int = 256
    shards: int = 2
    max_position: int = 4096

    @classmethod
    def tiny(cls) -> LlamaShape:
        return cls()

    @classmethod
    def bench(cls) -> LlamaShape:
        """~1.1 GB of BF16 weights in 3 shards (TinyLlama-1.1B's widths, 10 layers)."""
        return cls(hidden=2048, intermediate=5632, layers=10, heads=32, kv_heads=4, vocab=32000, shards=3)

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


def llama_tensors(shape: LlamaShape, dtype: str = "BF16") -> list[Tensor]:
    h, kv = shape.hidden, shape.kv_heads * shape.head_dim
    tensors = [Tensor("model.embed_tokens.weight", dtype, (shape.vocab, h))]
    for i in range(shape.layers):
        p = f"model.layers.{i}."
        tensors += [
            Tensor(p + "self_attn.q_proj.weight", dtype, (h, h)),
            Tensor(p + "self_attn.k_proj.weight", dtype, (kv, h)),
            Tensor(p + "self_attn.v_proj.weight", dtype, (kv, h)),
            Tensor(p + "self_attn.o_proj.weight", dtype, (h, h)),
            Tensor(p + "mlp.gate_proj.weight", dtype, (shape.intermediate, h)),
            Tensor(p + "mlp.up_proj.weight", dtype, (shape.intermediate, h)),
            Tensor(p + "mlp.down_proj.weight", dtype, (h, shape.intermediate)),
            Tensor(p + "input_layernorm.weight", dtype, (h,)),
            Tensor(p + "post_attention_layernorm.weight", dtype, (h,)),
        ]
    return [*tensors, Tensor("model.norm.weight", dtype, (h,)), Tensor("lm_head.weight", dtype, (shape.vocab, h))]


def llama_config(shape: LlamaShape) -> dict[str, object]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": shape.hidden,
        "intermediate_size": shape.intermediate,
        "num_hidden_layers": shape.layers,
        "num_attention_heads": shape.heads,
        "num_key_value_heads": shape.kv_heads,
        "vocab_size": shape.vocab,
        "max_position_embeddings": shape.max_position,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }


def _split(items: list[Tensor], parts: int) -> list[list[Tensor]]:
    size = -(-len(items) // parts)
    return [items[i : i + size] for i in range(0, len(items), size)]


def _text(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _filler(root: Path, rel: str, nbytes: int, seed: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        write_filler(out, nbytes, seed)
    return path


def write_llama_repo(
    root: Path, shape: LlamaShape | None = None, *, seed: str = "tiny-llama", distractors: bool = True
) -> dict[str, Path]:
    """Write the repo's files under `root`; returns repo path -> file."""
    shape = shape or LlamaShape.tiny()
    files: dict[str, Path] = {}
    tensors = llama_tensors(shape)
    shards = _split(tensors, shape.shards)
    weight_map: dict[str, str] = {}
    total = 0
    for index, part in enumerate(shards, start=1):
        name = f"model-{index:05d}-of-{len(shards):05d}.safetensors"
        files[name] = root / name
        total += write_safetensors(root / name, part, f"{seed}:{name}")
        weight_map |= {t.name: name for t in part}
    index_doc = {"metadata": {"total_size": total}, "weight_map": weight_map}
    files["model.safetensors.index.json"] = _text(root, "model.safetensors.index.json", json.dumps(index_doc, indent=2))
    files["config.json"] = _text(root, "config.json", json.dumps(llama_config(shape), indent=2))
    generation = {"bos_token_id": 1, "eos_token_id": 2, "temperature": 0.6, "top_p": 0.9}
    files["generation_config.json"] = _text(root, "generation_config.json", json.dumps(generation))
    vocab = {f"tok{i}": i for i in range(min(shape.vocab, 512))}
    tokenizer = {"version": "1.0", "model": {"type": "BPE", "vocab": vocab, "merges": []}}
    files["tokenizer.json"] = _text(root, "tokenizer.json", json.dumps(tokenizer))
    files["tokenizer_config.json"] = _text(root, "tokenizer_config.json", json.dumps({"model_max_length": 4096}))
    files["special_tokens_map.json"] = _text(root, "special_tokens_map.json", json.dumps({"bos_token": "tok1"}))
    if distractors:
        files |= _llama_distractors(root, shape, seed)
    return files


def _llama_distractors(root: Path, shape: LlamaShape, seed: str) -> dict[str, Path]:
    weights = sum(t.shape[0] * (t.shape[1] if len(t.shape) > 1 else 1) * 2 for t in llama_tensors(shape))
    small = min(weights, 64 * 1024)
    return {
        "README.md": _text(root, "README.md", "---\nlicense: apache-2.0\n---\n# tiny llama (test model)\n"),
        ".gitattributes": _text(root, ".gitattributes", "*.safetensors filter=lfs diff=lfs merge=lfs -text\n"),
        "pytorch_model.bin": _filler(root, "pytorch_model.bin", small, f"{seed}:bin"),
        "original/consolidated.00.pth": _filler(root, "original/consolidated.00.pth", small, f"{seed}:pth"),
        "original/params.json": _text(root, "original/params.json", json.dumps({"dim": shape.hidden})),
        "onnx/model.onnx": _filler(root, "onnx/model.onnx", small, f"{seed}:onnx"),
        "consolidated.safetensors": _filler(root, "consolidated.safetensors", small, f"{seed}:consolidated"),
        "assets/banner.png": _filler(root, "assets/banner.png", 2048, f"{seed}:png"),
    }


# --- GGUF --------------------------------------------------------------------------------------------------------


def gguf_metadata(arch: str, shape: LlamaShape, name: str, **extra: GgufValue) -> dict[str, GgufValue]:
    meta = {
        "general.architecture": GgufValue("str", arch),
        "general.name": GgufValue("str", name),
        f"{arch}.block_count": GgufValue("u32", shape.layers),
        f"{arch}.context_length": GgufValue("u32", shape.max_position),
        f"{arch}.embedding_length": GgufValue("u32", shape.hidden),
        f"{arch}.feed_forward_length": GgufValue("u32", shape.intermediate),
        f"{arch}.attention.head_count": GgufValue("u32", shape.heads),
        f"{arch}.attention.head_count_kv": GgufValue("u32", shape.kv_heads),
        f"{arch}.attention.key_length": GgufValue("u32", shape.head_dim),
        f"{arch}.attention.value_length": GgufValue("u32", shape.head_dim),
        f"{arch}.rope.dimension_count": GgufValue("u32", shape.head_dim),
        "tokenizer.ggml.model": GgufValue("str", "gpt2"),
        "tokenizer.ggml.tokens": GgufValue("arr", [f"tok{i}" for i in range(shape.vocab)], "str"),
    }
    return meta | extra


def gguf_tensors(shape: LlamaShape, quant: str) -> list[Tensor]:
    out = []
    for tensor in llama_tensors(shape):
        dtype = "F32" if len(tensor.shape) == 1 else quant
        out.append(replace(tensor, dtype=dtype, name=tensor.name.replace("model.", "")))
    return out


def write_gguf_repo(
    root: Path,
    shape: LlamaShape | None = None,
    *,
    name: str = "tiny-llama",
    arch: str = "llama",
    seed: str = "tiny-gguf",
    **metadata: GgufValue,
) -> dict[str, Path]:
    """Q4_K_M (one file), Q8_0 split in 2 parts under Q8_0/, mmproj F16 and Q8_0, an imatrix, a README."""
    shape = shape or LlamaShape(hidden=256, intermediate=512, heads=4, kv_heads=2)
    files: dict[str, Path] = {}
    meta = gguf_metadata(arch, shape, name, **metadata)
    single = f"{name}-Q4_K_M.gguf"
    files[single] = root / single
    write_gguf(root / single, meta, gguf_tensors(shape, "Q4_K"), f"{seed}:{single}")
    tensors = gguf_tensors(shape, "Q8_0")
    half = len(tensors) // 2
    for index, part in enumerate((tensors[:half], tensors[half:]), start=1):
        rel = f"Q8_0/{name}-Q8_0-{index:05d}-of-00002.gguf"
        split = {
            "split.no": GgufValue("u16", index - 1),
            "split.count": GgufValue("u16", 2),
            "split.tensors.count": GgufValue("i32", len(tensors)),
        }
        part_meta = meta | split if index == 1 else {"general.architecture": meta["general.architecture"], **split}
        files[rel] = root / rel
        write_gguf(root / rel, part_meta, part, f"{seed}:{rel}")
    projector = [Tensor("mm.0.weight", "F16", (shape.hidden, shape.hidden))]
    for quant, dtype in (("F16", "F16"), ("Q8_0", "Q8_0")):
        rel = f"mmproj-{name}-{quant}.gguf"
        files[rel] = root / rel
        proj_meta = {"general.architecture": GgufValue("str", "clip")}
        write_gguf(root / rel, proj_meta, [replace(t, dtype=dtype) for t in projector], f"{seed}:{rel}")
    files[f"{name}-imatrix.gguf"] = _filler(root, f"{name}-imatrix.gguf", 4096, f"{seed}:imatrix")
    files["README.md"] = _text(root, "README.md", f"# {name} GGUF (test model)\n")
    return files
