"""Which files of a repo a runtime reads (pure functions over repo paths).

Safetensors runtimes (vLLM, SGLang, ...):
- one weight format: top-level `*.safetensors` when present, else `*.bin`, else `*.pt` (vLLM's order); every
  other weight format (`.bin .pt .pth .ckpt .h5 .msgpack .onnx .tflite .gguf .ot .npz ...`) is left out;
- with a `*.safetensors.index.json`, top-level safetensors the index does not list are duplicates
  (`consolidated.safetensors` in Mistral repos) and are left out; with `load_format: mistral` it is the other way
  round (the `consolidated*.safetensors` + `params.json` format);
- `original/`, `onnx/`, `openvino/`, `coreml/`, `tflite/` and `mlx/` hold other formats and are left out, as are
  media files (README images); every other file (config, tokenizer, generation config, chat template, remote
  code `*.py`, processor configs, adapter subfolders) is kept: engines run offline and fail on a missing small file.

GGUF (llama.cpp's `-hf repo[:QUANT]` rules): the first model file (sorted by path) whose path contains `QUANT`
followed by `.` or `-` (case-insensitive), skipping `mmproj`/`imatrix`/`mtp-`/`eagle3-`/`dflash-`/`dspark-` files
and parts other than the first of a split; without a tag `Q4_K_M`, then `Q8_0`, then the first model file. A split
`name-00001-of-0000N.gguf` brings all N parts. The projector is the `mmproj` file in the model's directory or an
ancestor, deepest first, then closest in bits to the model's quant.

Recipe patterns (`distribution_config.models.entries[].allow_patterns / ignore_patterns`, fnmatch like
`snapshot_download`: `*` also matches `/`, a trailing `/` means the whole directory): allow patterns replace the
runtime's selection, ignore patterns remove from it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from sparkrun.models.errors import ModelError

WEIGHT_SUFFIXES: Final = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".h5",
    ".msgpack",
    ".onnx",
    ".onnx_data",
    ".tflite",
    ".gguf",
    ".ot",
    ".npz",
    ".nemo",
    ".mlmodel",
    ".pdparams",
)
OTHER_FORMAT_DIRS: Final = ("original/", "onnx/", "openvino/", "coreml/", "tflite/", "mlx/")
MEDIA_SUFFIXES: Final = (
    ".png",
    ".jpg",
    ".jpeg",
    ".gif",
    ".webp",
    ".svg",
    ".mp4",
    ".mov",
    ".webm",
    ".pdf",
    ".wav",
    ".mp3",
    ".flac",
)
NOT_WEIGHTS: Final = frozenset({"training_args.bin", "optimizer.bin", "optimizer.pt", "scheduler.pt", "scaler.pt"})
GGUF_SIDECARS: Final = ("mmproj", "imatrix", "mtp-", "eagle3-", "dflash-", "dspark-")
DEFAULT_GGUF_TAGS: Final = ("Q4_K_M", "Q8_0")

_SPLIT: Final = re.compile(r"^(?P<prefix>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})$", re.IGNORECASE)
_TAG: Final = re.compile(r"[-.](?P<tag>[A-Z0-9_]+)$", re.IGNORECASE)


def _top_level(path: str) -> bool:
    return "/" not in path


def _basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def matches_any(path: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatch(path, p + "*" if p.endswith("/") else p) for p in patterns)


def apply_patterns(
    all_paths: Sequence[str], selected: Sequence[str], allow: Sequence[str] | None, ignore: Sequence[str] | None
) -> list[str]:
    base = [p for p in all_paths if matches_any(p, allow)] if allow else list(selected)
    return sorted(p for p in base if not (ignore and matches_any(p, ignore)))


# --- safetensors ---------------------------------------------------------------------------------------------------


def _weight_format(paths: Collection[str]) -> str | None:
    top = [p for p in paths if _top_level(p) and p not in NOT_WEIGHTS]
    for suffix in (".safetensors", ".bin", ".pt"):
        if any(p.endswith(suffix) for p in top):
            return suffix
    return None


def select_checkpoint_files(
    paths: Collection[str], *, index_files: Collection[str] | None = None, load_format: str | None = None
) -> list[str]:
    """The files a safetensors runtime reads. `index_files`: the shards the safetensors index lists, when known."""
    suffix = _weight_format(paths)
    if suffix is None:
        has_gguf = any(p.lower().endswith(".gguf") for p in paths)
        hint = "a GGUF repo runs with runtime llama-cpp (model `org/repo:QUANT`)" if has_gguf else None
        raise ModelError("no safetensors, .bin or .pt weights at the top of the repo", hint=hint)
    mistral = (load_format or "").lower() == "mistral"
    if suffix == ".safetensors" and not any(
        _top_level(p) and p.endswith(".safetensors") and not p.lower().startswith("consolidated") for p in paths
    ):
        mistral = True  # only the consolidated (Mistral) format is published
    keep: list[str] = []
    for path in sorted(paths):
        name = _basename(path).lower()
        if path.startswith(OTHER_FORMAT_DIRS) or name.endswith(MEDIA_SUFFIXES) or path in NOT_WEIGHTS:
            continue
        if name.endswith(WEIGHT_SUFFIXES) and not name.endswith(suffix):
            continue
        if suffix == ".safetensors" and _top_level(path) and name.endswith(".safetensors"):
            consolidated = name.startswith("consolidated")
            if mistral != consolidated:
                continue
            if not mistral and index_files is not None and path not in index_files:
                continue
        keep.append(path)
    return keep


# --- GGUF ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GgufPick:
    primary: str  # the first (or only) file: what llama-server loads
    parts: tuple[str, ...]  # all parts of a split, else (primary,)
    mmproj: str | None = None


@dataclass(frozen=True)
class _SplitInfo:
    prefix: str
    index: int
    count: int
    tag: str


def _split_info(path: str) -> _SplitInfo:
    stem = path[: -len(".gguf")] if path.lower().endswith(".gguf") else path
    index = count = 1
    found = _SPLIT.match(stem)
    if found:
        stem, index, count = found["prefix"], int(found["index"]), int(found["count"])
    tag = _TAG.search(stem)
    return _SplitInfo(stem, index, count, tag["tag"].upper() if tag else "")


def _quant_bits(tag: str) -> int:
    digits = re.search(r"\d+", tag)
    return int(digits.group()) if digits else 0


def is_gguf_model_file(path: str) -> bool:
    name = _basename(path)
    return name.lower().endswith(".gguf") and not any(s in name for s in GGUF_SIDECARS)


def _first_with_tag(models: Sequence[str], tag: str) -> str | None:
    pattern = re.compile(re.escape(tag) + r"[.-]", re.IGNORECASE)
    for path in models:
        if pattern.search(path) and _split_info(path).index == 1:
            return path
    return None


def _pick_mmproj(paths: Collection[str], primary: str, tag: str | None) -> str | None:
    model_dir = primary.split("/")[:-1]
    want = _quant_bits(tag) if tag else _quant_bits(_split_info(primary).tag)
    best: tuple[int, int, str] | None = None
    for path in sorted(paths):
        if not path.lower().endswith(".gguf") or "mmproj" not in _basename(path):
            continue
        sib_dir = path.split("/")[:-1]
        if sib_dir != model_dir[: len(sib_dir)]:
            continue
        key = (-len(sib_dir), abs(_quant_bits(_split_info(path).tag) - want), path)
        best = key if best is None or key < best else best
    return best[2] if best else None


def select_gguf_files(paths: Collection[str], quant: str | None, *, include_mmproj: bool = True) -> GgufPick:
    models = sorted(p for p in paths if is_gguf_model_file(p))
    primary = None
    for tag in (quant,) if quant else DEFAULT_GGUF_TAGS:
        primary = _first_with_tag(models, tag)
        if primary:
            break
    if primary is None and not quant:
        primary = next((p for p in models if _split_info(p).index == 1), None)
    if primary is None:
        tags = sorted({_split_info(p).tag for p in models if _split_info(p).tag})
        what = f"quant {quant!r}" if quant else "GGUF model file"
        raise ModelError(f"no {what} in the repo", hint=f"available: {', '.join(tags) or 'no GGUF files'}")
    info = _split_info(primary)
    parts: tuple[str, ...] = (primary,)
    if info.count > 1:
        same = [p for p in models if (s := _split_info(p)).prefix == info.prefix and s.count == info.count]
        parts = tuple(sorted(same, key=lambda p: _split_info(p).index))
        if len(parts) != info.count:
            raise ModelError(f"{primary}: split into {info.count} parts but the repo has {len(parts)}")
    mmproj = _pick_mmproj(paths, primary, quant) if include_mmproj else None
    return GgufPick(primary, parts, mmproj)
