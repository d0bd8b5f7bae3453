"""Setting values are typed the way each engine's own parser reads them: errors only where the engine refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from recipe_fakes import make_runtime, recipe_from, write

from sparkrun.recipes.model import Issue
from sparkrun.recipes.resolved import used_keys
from sparkrun.recipes.value_chain import build_settings
from sparkrun.recipes.value_types import check_setting_values, checks_for, human_readable_int


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("32768", 32768),
        ("32k", 32000),
        ("128K", 131072),
        ("1m", 1000000),
        ("25.6k", 25600),
        ("1M", 1048576),
        (" 8192 ", 8192),
        ("1_000", 1000),
        ("1.5K", None),
        ("abc", None),
        ("", None),
    ],
)
def test_vllm_human_readable_integers(text: str, number: int | None) -> None:
    assert human_readable_int(text) == number


def _findings(family: str, key: str, text: str, runtime: str = "rt") -> tuple[str, str] | None:
    return checks_for(family, runtime)[key](text)


def _severity(family: str, key: str, text: str) -> str | None:
    finding = _findings(family, key, text)
    return None if finding is None else finding[0]


@pytest.mark.parametrize("text", ["32k", "128K", "1m", "-1", "auto", "AUTO", "262144", "25.6k"])
def test_vllm_accepts_every_max_model_len_its_parser_accepts(text: str) -> None:
    assert _findings("vllm", "max_model_len", text) is None


@pytest.mark.parametrize(
    ("text", "severity"), [("abc", "error"), ("1.5K", "error"), ("0", "warning"), ("-5", "warning")]
)
def test_vllm_refuses_what_its_parser_refuses(text: str, severity: str) -> None:
    finding = _findings("vllm", "max_model_len", text)
    assert finding is not None and finding[0] == severity


@pytest.mark.parametrize(
    ("text", "ok"),
    [("0.9", True), ("1", True), ("1e-1", True), ("0", False), ("1.5", False), ("auto", False), ("nan", False)],
)
def test_vllm_gpu_memory_utilization_is_a_fraction_in_0_1(text: str, ok: bool) -> None:
    assert _severity("vllm", "gpu_memory_utilization", text) == (None if ok else "error")


def test_vllm_batched_tokens_are_human_readable_but_num_seqs_are_not() -> None:
    assert _findings("vllm", "max_num_batched_tokens", "8k") is None
    assert _findings("vllm", "max_num_seqs", "8k") == ("error", "vLLM takes a whole number, got '8k'")


def test_kv_cache_dtypes_outside_the_known_list_are_only_warnings() -> None:
    assert _findings("vllm", "kv_cache_dtype", "fp8_e4m3") is None
    assert _severity("vllm", "kv_cache_dtype", "nvfp4_future") == "warning"


def test_sglang_reads_plain_integers_and_does_not_range_check_the_fraction() -> None:
    assert _findings("sglang", "max_model_len", "32k") == ("error", "SGLang takes a whole number, got '32k'")
    assert _findings("sglang", "context_length", " 4096 ") is None
    assert _severity("sglang", "mem_fraction_static", "1.5") == "warning"


def test_llama_cpp_reads_a_leading_number() -> None:
    assert _findings("llama-cpp", "max_model_len", "8192") is None
    assert _findings("llama-cpp", "max_model_len", "32k") == (
        "warning",
        "llama.cpp reads '32k' as 32 (std::stoi stops at the first non-digit)",
    )
    assert _severity("llama-cpp", "ctx_size", "abc") == "error"


def test_unknown_engines_only_get_warnings() -> None:
    assert _findings("trtllm", "max_model_len", "4096", runtime="trtllm") is None
    finding = _findings("trtllm", "max_model_len", "32k", runtime="trtllm")
    assert finding is not None and finding[0] == "warning" and "runtime 'trtllm'" in finding[1]


@pytest.mark.parametrize(("key", "text"), [("port", "70000"), ("tensor_parallel", "0"), ("pipeline_parallel", "two")])
def test_sparkrun_own_keys_are_errors_for_every_engine(key: str, text: str) -> None:
    for family in ("vllm", "sglang", "llama-cpp", "other"):
        assert _severity(family, key, text) == "error"


def _issues(text: str, cli: dict[str, object] | None = None, path: Path | None = None) -> list[Issue]:
    recipe = recipe_from(text, path=path)
    runtime = make_runtime("vllm-distributed", family="vllm")
    settings = build_settings(recipe, runtime, cli or {}, [])
    used = used_keys(recipe, runtime, settings)
    return check_setting_values(recipe, settings, family="vllm", runtime=runtime.name, used=used)


COMMAND = "command: vllm serve {model} --max-model-len {max_model_len} --gpu-memory-utilization {gmu_text}\n"


def test_findings_point_at_the_layer_the_value_came_from(tmp_path: Path) -> None:
    text = (
        "model: m/x\nruntime: vllm\ndefaults:\n  max_model_len: lots\n  gpu_memory_utilization: 0.5\n"
        "  gmu_text: '{gpu_memory_utilization}'\noverrides:\n  - when: {tp: 1}\n    defaults:\n"
        "      gpu_memory_utilization: 2\n" + COMMAND
    )
    path = write(tmp_path / "r.yaml", text)
    found = {(i.key, i.where) for i in _issues(text, path=path)}
    assert found == {
        ("defaults.max_model_len", f"{path}:4"),
        ("overrides[0].defaults.gpu_memory_utilization", f"{path}:10"),
    }
    from_cli = _issues(text.replace("lots", "4096"), cli={"gpu_memory_utilization": 3.0}, path=path)
    assert [(i.key, i.where) for i in from_cli] == [("gpu_memory_utilization", "command line")]


def test_values_the_engine_never_sees_are_not_checked() -> None:
    text = "model: m/x\nruntime: vllm\ndefaults:\n  max_model_len: lots\ncommand: vllm serve {model}\n"
    assert _issues(text) == []
