"""Read a GGUF file's header and metadata from its first bytes (no weight download).

Format (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md), little-endian: `GGUF`, u32 version (2 or 3),
u64 tensor count, u64 metadata count, then `key (u64 length + bytes), u32 type, value` entries. The metadata can
be several MB (tokenizer vocabularies), so `read_gguf_metadata` asks for a growing prefix through `fetch` (an HTTP
Range read) until the metadata parses. Arrays of strings and long arrays are kept as their length only.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from sparkrun.models.errors import ModelError

_SCALARS: Final = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
KEEP_ARRAY_ITEMS: Final = 4096  # per-layer arrays are kept; vocabularies are not
FIRST_READ: Final = 2 * 1024 * 1024
MAX_READ: Final = 128 * 1024 * 1024


class NeedMoreBytes(Exception):
    """The prefix ends inside the metadata."""


@dataclass(frozen=True)
class ArrayInfo:
    """An array that was not kept: its item type and length."""

    item_type: int
    length: int


@dataclass(frozen=True)
class GgufMetadata:
    version: int
    tensor_count: int
    metadata: dict[str, Any] = field(default_factory=dict)
    metadata_end: int = 0  # offset where the tensor infos start

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    def arch_value(self, key: str, default: Any = None) -> Any:
        """`{arch}.{key}`, e.g. `arch_value("block_count")`."""
        return self.metadata.get(f"{self.architecture}.{key}", default)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise NeedMoreBytes
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        return self.take(self.unpack("<Q")).decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        self.take(self.unpack("<Q"))

    def value(self, kind: int) -> Any:
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            return self.array()
        if kind not in _SCALARS:
            raise ModelError(f"GGUF metadata has an unknown value type {kind}")
        return self.unpack(_SCALARS[kind])

    def array(self) -> Any:
        item_type, length = self.unpack("<I"), self.unpack("<Q")
        if item_type == _STRING or length > KEEP_ARRAY_ITEMS:
            for _ in range(length):
                self.skip_value(item_type)
            return ArrayInfo(item_type, length)
        return [self.value(item_type) for _ in range(length)]

    def skip_value(self, kind: int) -> None:
        if kind == _STRING:
            self.skip_string()
        elif kind == _ARRAY:
            self.array()
        else:
            self.take(struct.calcsize(_SCALARS[kind]))


def parse_gguf_metadata(data: bytes) -> GgufMetadata:
    """Header and metadata from a prefix of the file; NeedMoreBytes when the prefix is too short."""
    reader = _Reader(data)
    if reader.take(4) != b"GGUF":
        raise ModelError("not a GGUF file (bad magic)")
    version = reader.unpack("<I")
    if version not in (2, 3):
        raise ModelError(f"GGUF version {version} is not supported (2 and 3 are)")
    tensor_count, kv_count = reader.unpack("<Q"), reader.unpack("<Q")
    metadata: dict[str, Any] = {}
    for _ in range(kv_count):
        key = reader.string()
        metadata[key] = reader.value(reader.unpack("<I"))
    return GgufMetadata(version, tensor_count, metadata, reader.pos)


def read_gguf_metadata(fetch: Callable[[int, int], bytes], size: int | None = None) -> GgufMetadata:
    """Parse the metadata, fetching bytes [0, n) with `fetch(start, end_inclusive)` for a doubling n."""
    have = b""
    want = FIRST_READ
    while True:
        end = want if size is None else min(want, size)
        if end > len(have):
            have += fetch(len(have), end - 1)
        try:
            return parse_gguf_metadata(have)
        except NeedMoreBytes:
            if (size is not None and len(have) >= size) or want >= MAX_READ:
                raise ModelError(f"GGUF metadata does not end within the first {len(have)} bytes") from None
            want *= 2
