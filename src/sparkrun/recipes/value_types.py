"""Type checks of setting values that follow what each engine's own parser accepts (the only place values are typed).

A value is checked as the text it becomes on the command line (`format_value`: `true`, `0.9`, `32k`), and only when
it reaches the engine: the command template names it, or the runtime maps it to a flag (no `command:`). An error is
a value the engine's parser refuses; a warning is a value sparkrun cannot vouch for (an engine whose parser it does
not know, a dtype newer than its list, a value the engine reads differently than it looks). Facts:

- sparkrun's own keys (any runtime): `port` 1..65535, `tensor_parallel`/`pipeline_parallel`/`data_parallel` whole
  numbers >= 1 (sparkrun plans hosts and ports from them); numbers written as strings are fine.
- vLLM (`vllm/engine/arg_utils.py`): `--max-model-len` is `human_readable_int_or_auto` (`-1`/`auto`, `32k` = 32,000,
  `128K` = 131,072, `1m`, `25.6k`; decimals only with lower-case, decimal suffixes); `--max-num-batched-tokens` and
  `--kv-cache-memory-bytes` are `human_readable_int`; `--gpu-memory-utilization` is a float with `gt=0, le=1`
  (`CacheConfig`); `--max-num-seqs`, `--block-size`, `--seed` are `int`; `--kv-cache-dtype` a version-dependent
  choice (`auto`, `fp8`, ...).
- SGLang (`server_args.py`, argparse): `--context-length`, `--max-running-requests`, `--chunked-prefill-size`,
  `--max-total-tokens` are `int` (no `32k`); `--mem-fraction-static` is a `float` (not range-checked by the parser).
- llama.cpp (`common/arg.cpp`): integer options go through `std::stoi`, which reads a leading number and ignores the
  rest, so `-c 32k` is a context of 32 tokens (warning) and `-c abc` fails (error).
- Other engines: plain numbers pass; anything else is a warning (sparkrun does not know their parsers).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping

from sparkrun.recipes.model import Issue, Recipe, Severity
from sparkrun.recipes.render import format_value
from sparkrun.recipes.value_chain import Settings

Finding = tuple[Severity, str] | None  # (severity, message) or None when the value is fine
Check = Callable[[str], Finding]

_HUMAN = re.compile(r"(\d+(?:\.\d+)?)([kKmMgGtT])")
_DECIMAL = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_BINARY = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_STOI = re.compile(r"\s*[+-]?\d+")
_INT32 = 2**31 - 1
VLLM_KV_DTYPES = frozenset({"auto", "bfloat16", "float16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc", "fp8_ds_mla"})
SGLANG_KV_DTYPES = frozenset({"auto", "bf16", "bfloat16", "fp8_e4m3", "fp8_e5m2", "fp4_e2m1"})


def _py_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _py_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def human_readable_int(text: str) -> int | None:
    """vLLM's reading of `32k`, `128K`, `25.6k` or a plain integer; None when vLLM refuses the text."""
    match = _HUMAN.fullmatch(text.strip())
    if match is None:
        return _py_int(text.strip())
    number, suffix = match.groups()
    if suffix in _DECIMAL:
        return int(float(number) * _DECIMAL[suffix])
    return int(number) * _BINARY[suffix] if number.isdigit() else None


# ---- checks ------------------------------------------------------------------------------------------------------
def _whole(low: int, high: int | None = None) -> Check:
    def check(text: str) -> Finding:
        number = _py_int(text.strip()) if text.strip().lstrip("+").isdigit() else None
        if number is None or number < low or (high is not None and number > high):
            span = f"{low}..{high}" if high is not None else f">= {low}"
            return "error", f"expected a whole number ({span}), got {text!r}"
        return None

    return check


def _vllm_len(text: str) -> Finding:
    if text.strip() == "-1" or text.strip().lower() == "auto":
        return None
    number = human_readable_int(text)
    if number is None:
        return "error", f"vLLM reads it with human_readable_int_or_auto (e.g. 32768, 32k, 128K, -1, auto), got {text!r}"
    return None if number >= 1 else ("warning", f"{text!r} is no context length vLLM can serve (>= 1, -1 or auto)")


def _vllm_int(text: str) -> Finding:
    if human_readable_int(text) is None:
        return "error", f"vLLM reads it with human_readable_int (e.g. 8192, 8k, 16K), got {text!r}"
    return None


def _int(engine: str) -> Check:
    def check(text: str) -> Finding:
        return None if _py_int(text) is not None else ("error", f"{engine} takes a whole number, got {text!r}")

    return check


def _fraction(engine: str, *, strict: bool) -> Check:
    def check(text: str) -> Finding:
        number = _py_float(text)
        if number is None:
            return "error", f"{engine} takes a number (a fraction of GPU memory in (0, 1]), got {text!r}"
        if math.isfinite(number) and 0 < number <= 1:
            return None
        return ("error" if strict else "warning"), f"{engine} takes a fraction of GPU memory in (0, 1], got {text!r}"

    return check


def _stoi(text: str) -> Finding:
    match = _STOI.match(text)
    if match is None or abs(int(match.group(0))) > _INT32:
        return "error", f"llama.cpp reads a whole number here (std::stoi), got {text!r}"
    if match.end() != len(text):
        return "warning", f"llama.cpp reads {text!r} as {int(match.group(0))} (std::stoi stops at the first non-digit)"
    return None


def _choice(engine: str, known: frozenset[str]) -> Check:
    def check(text: str) -> Finding:
        if text in known:
            return None
        return "warning", f"{text!r} is not a value sparkrun knows {engine} to take ({', '.join(sorted(known))})"

    return check


def _unknown_engine(runtime: str) -> Check:
    def check(text: str) -> Finding:
        if _py_float(text) is not None:
            return None
        return "warning", f"sparkrun does not know how runtime {runtime!r} reads {text!r}; check its engine takes it"

    return check


OWN_CHECKS: Mapping[str, Check] = {
    "port": _whole(1, 65535),
    "tensor_parallel": _whole(1),
    "pipeline_parallel": _whole(1),
    "data_parallel": _whole(1),
}
_SGLANG_INT = _int("SGLang")
LLAMA_INT_KEYS = (
    "max_model_len",
    "ctx_size",
    "n_gpu_layers",
    "max_num_seqs",
    "parallel",
    "max_num_batched_tokens",
    "batch_size",
    "ubatch_size",
    "threads",
)
ENGINE_CHECKS: Mapping[str, Mapping[str, Check]] = {
    "vllm": {
        "max_model_len": _vllm_len,
        "max_num_batched_tokens": _vllm_int,
        "kv_cache_memory_bytes": _vllm_int,
        "gpu_memory_utilization": _fraction("vLLM", strict=True),
        "max_num_seqs": _int("vLLM"),
        "block_size": _int("vLLM"),
        "seed": _int("vLLM"),
        "kv_cache_dtype": _choice("vLLM", VLLM_KV_DTYPES),
    },
    "sglang": {
        **dict.fromkeys(("max_model_len", "context_length", "max_num_seqs", "max_running_requests"), _SGLANG_INT),
        **dict.fromkeys(("max_num_batched_tokens", "chunked_prefill_size", "max_total_tokens"), _SGLANG_INT),
        **dict.fromkeys(("gpu_memory_utilization", "mem_fraction_static"), _fraction("SGLang", strict=False)),
        "kv_cache_dtype": _choice("SGLang", SGLANG_KV_DTYPES),
    },
    "llama-cpp": dict.fromkeys(LLAMA_INT_KEYS, _stoi),
}
UNKNOWN_ENGINE_KEYS = ("max_model_len", "max_num_seqs", "max_num_batched_tokens", "gpu_memory_utilization")


def checks_for(family: str, runtime: str) -> dict[str, Check]:
    """The checks for one runtime: sparkrun's own keys plus its engine's (or the cautious unknown-engine ones)."""
    engine = ENGINE_CHECKS.get(family)
    if engine is None:
        engine = dict.fromkeys(UNKNOWN_ENGINE_KEYS, _unknown_engine(runtime))
    return {**engine, **OWN_CHECKS}


def _located(recipe: Recipe, settings: Settings, key: str) -> tuple[str, str]:
    """(where, key path) of the layer a setting came from."""
    origin = settings.origin(key) or ""
    if origin == "recipe":
        return recipe.where(f"defaults.{key}"), f"defaults.{key}"
    if origin.startswith("overrides["):
        path = f"{origin}.defaults.{key}"
        return recipe.where(path), path
    if origin == "cli":
        return "command line", key
    return recipe.where(), key


def check_setting_values(
    recipe: Recipe, settings: Settings, *, family: str, runtime: str, used: Iterable[str]
) -> list[Issue]:
    """Findings for every checked setting that reaches the engine, and for sparkrun's own keys (those from the
    recipe's `defaults:` are the loader's: `load.py` reports them with the file's other errors)."""
    checks = checks_for(family, runtime)
    wanted = set(used) | set(OWN_CHECKS)
    issues: list[Issue] = []
    for key, check in checks.items():
        value = settings.get(key)
        if key not in wanted or value is None or (key in OWN_CHECKS and settings.origin(key) == "recipe"):
            continue
        finding = check(format_value(value))
        if finding is not None:
            severity, message = finding
            code = "invalid-setting" if severity == "error" else "suspicious-setting"
            where, path = _located(recipe, settings, key)
            issues.append(Issue(severity, code, message, where, path, f"see what {runtime} accepts for {key}"))
    return issues
