"""From a loaded recipe to model inputs: the manifest request (model, revision, distribution patterns) and the
memory request (context, KV dtype, parallelism) read from the resolved settings and the rendered command."""

from __future__ import annotations

from pathlib import Path

from sparkrun.models.manifest import request_from_recipe
from sparkrun.models.vram_inputs import vram_request_from_settings
from sparkrun.recipes.lookup import Resolver
from sparkrun.recipes.registry import RegistryStore
from sparkrun.recipes.request import render_command
from sparkrun.recipes.value_chain import build_settings
from sparkrun.runtimes.llama_cpp import LlamaCppRuntime
from sparkrun.runtimes.vllm import VllmDistributedRuntime


def test_the_bundled_llama_cpp_recipe_asks_for_its_gguf_quant() -> None:
    recipe = Resolver(store=RegistryStore([])).load("qwen3-1.7b-llama-cpp")
    request = request_from_recipe(recipe, "llama-cpp")
    assert request is not None
    assert (request.model, request.revision, request.wants_gguf) == ("Qwen/Qwen3-1.7B-GGUF:Q8_0", None, True)
    settings = build_settings(recipe, LlamaCppRuntime(), {}, [])
    argv = render_command(recipe, settings)
    assert argv is not None
    memory = vram_request_from_settings("llama-cpp", settings, argv)
    assert memory.max_model_len == 8192 and memory.kv_cache_dtype == "auto"


def test_a_recipes_distribution_entry_and_command_flags_reach_the_requests(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(
        """recipe_version: "2"
model: org/Big-Model
model_revision: 0123456789abcdef0123456789abcdef01234567
runtime: vllm-distributed
distribution_config:
  models:
    entries:
      - name: "{model}"
        ignore_patterns: ["*.pth", "original/*"]
defaults:
  max_model_len: 32768
  gpu_memory_utilization: 0.85
command: |
  vllm serve {model} --max-model-len {max_model_len} --gpu-memory-utilization {gpu_memory_utilization}
    --kv-cache-dtype fp8 -tp 2
"""
    )
    recipe = Resolver(store=RegistryStore([])).load(str(path))
    request = request_from_recipe(recipe, "vllm-distributed")
    assert request is not None
    assert request.revision == "0123456789abcdef0123456789abcdef01234567"
    assert request.ignore_patterns == ("*.pth", "original/*") and request.allow_patterns is None
    settings = build_settings(recipe, VllmDistributedRuntime(), {}, [])
    memory = vram_request_from_settings("vllm-distributed", settings, render_command(recipe, settings) or ())
    assert (memory.max_model_len, memory.gpu_memory_utilization, memory.kv_cache_dtype, memory.tp) == (
        32768,
        0.85,
        "fp8",
        2,
    )


def test_a_host_path_model_needs_no_request(tmp_path: Path) -> None:
    path = tmp_path / "local.yaml"
    path.write_text('recipe_version: "2"\nmodel: /models/local.gguf\nruntime: llama-cpp\n')
    recipe = Resolver(store=RegistryStore([])).load(str(path))
    assert request_from_recipe(recipe, "llama-cpp") is None
