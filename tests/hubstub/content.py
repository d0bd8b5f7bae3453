"""Deterministic test model files: safetensors with valid headers, GGUF with valid header/metadata/tensor infos.

Tensor data is filler (pseudo-random, reproducible from a seed) written in 1 MiB chunks, so a ~1 GB model is
streamed to disk without holding it in memory. Nothing here is a usable model; the headers are real.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

CHUNK = 1 << 20

SAFETENSORS_DTYPE_BYTES = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I8": 1, "U8": 1}


def write_filler(out: BinaryIO, nbytes: int, seed: str) -> None:
    """`nbytes` of reproducible filler: one pseudo-random 1 MiB block per seed, each chunk stamped with its index so
    no two chunks (or files) are equal."""
    base = bytearray(hashlib.shake_128(seed.encode()).digest(CHUNK))
    index = 0
    remaining = nbytes
    while remaining > 0:
        base[:16] = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=16).digest()
        take = min(remaining, CHUNK)
        out.write(base[:take] if take < CHUNK else base)
        remaining -= take
        index += 1


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str  # safetensors dtype ("BF16", ...) or GGUF type name ("Q8_0", ...)
    shape: tuple[int, ...]


def tensor_nbytes(tensor: Tensor) -> int:
    return math.prod(tensor.shape) * SAFETENSORS_DTYPE_BYTES[tensor.dtype]


def write_safetensors(path: Path, tensors: Sequence[Tensor], seed: str) -> int:
    """A valid safetensors file (header + filler data). Returns its size."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for tensor in tensors:
        size = tensor_nbytes(tensor)
        header[tensor.name] = {
            "dtype": tensor.dtype,
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        out.write(struct.pack("<Q", len(raw)))
        out.write(raw)
        write_filler(out, offset, seed)
    return 8 + len(raw) + offset


# --- GGUF (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md) -------------------------------------------------

GGUF_VALUE_TYPES = {
    "u8": 0,
    "i8": 1,
    "u16": 2,
    "i16": 3,
    "u32": 4,
    "i32": 5,
    "f32": 6,
    "bool": 7,
    "str": 8,
    "arr": 9,
    "u64": 10,
    "i64": 11,
    "f64": 12,
}
_PACK = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
# ggml type id, elements per block, bytes per block
GGML_TYPES: dict[str, tuple[int, int, int]] = {
    "F32": (0, 1, 4),
    "F16": (1, 1, 2),
    "Q4_0": (2, 32, 18),
    "Q8_0": (8, 32, 34),
    "Q4_K": (12, 256, 144),
    "Q6_K": (14, 256, 210),
    "BF16": (30, 1, 2),
}
GGUF_ALIGNMENT = 32


@dataclass(frozen=True)
class GgufValue:
    """A typed metadata value: kind is a GGUF_VALUE_TYPES key; arrays give `item_kind` and a list."""

    kind: str
    value: Any
    item_kind: str | None = None


def _gguf_str(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _gguf_scalar(kind: str, value: Any) -> bytes:
    code = GGUF_VALUE_TYPES[kind]
    return _gguf_str(value) if kind == "str" else struct.pack(_PACK[code], value)


def _gguf_kv(key: str, item: GgufValue) -> bytes:
    out = _gguf_str(key) + struct.pack("<I", GGUF_VALUE_TYPES[item.kind])
    if item.kind != "arr":
        return out + _gguf_scalar(item.kind, item.value)
    assert item.item_kind is not None
    out += struct.pack("<IQ", GGUF_VALUE_TYPES[item.item_kind], len(item.value))
    return out + b"".join(_gguf_scalar(item.item_kind, v) for v in item.value)


def gguf_tensor_nbytes(tensor: Tensor) -> int:
    _, block, block_bytes = GGML_TYPES[tensor.dtype]
    count = math.prod(tensor.shape)
    assert count % block == 0, f"{tensor.name}: {count} elements are not a multiple of {block}"
    return count // block * block_bytes


def write_gguf(path: Path, metadata: Mapping[str, GgufValue], tensors: Iterable[Tensor], seed: str) -> int:
    """A valid GGUF v3 file: header, metadata, tensor infos, aligned filler data. Returns its size."""
    tensors = list(tensors)
    infos = b""
    offset = 0
    for tensor in tensors:
        dims = tuple(reversed(tensor.shape))  # GGUF lists the fastest-varying dimension first
        infos += _gguf_str(tensor.name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", GGML_TYPES[tensor.dtype][0], offset)
        offset += gguf_tensor_nbytes(tensor)
        offset += -offset % GGUF_ALIGNMENT
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    head += b"".join(_gguf_kv(key, value) for key, value in metadata.items()) + infos
    head += b"\0" * (-len(head) % GGUF_ALIGNMENT)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        out.write(head)
        write_filler(out, offset, seed)
    return len(head) + offset
