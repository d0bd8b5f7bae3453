"""sglang, llama-cpp and eugr-vllm: rank specs compared as data."""

from __future__ import annotations

import dataclasses

import pytest
from runtime_cases import rank_vars, request, topology

from sparkrun.errors import RecipeError
from sparkrun.runtimes.base import RankSpec
from sparkrun.runtimes.eugr import EugrVllmRuntime
from sparkrun.runtimes.llama_cpp import LlamaCppRuntime
from sparkrun.runtimes.sglang import SglangRuntime
from sparkrun.runtimes.vllm import VllmRayRuntime

# --- sglang -------------------------------------------------------------------------------------------------------

SGLANG = (
    "sglang",
    "serve",
    "--model-path",
    "Qwen/Qwen3-1.7B",
    "--host",
    "0.0.0.0",
    "--port",
    "30000",
)
SGLANG_TUNING = ("--mem-fraction-static", "0.8", "--context-length", "8192", "--reasoning-parser", "qwen3")


def test_sglang_solo() -> None:
    specs = SglangRuntime().build(request({"port": 30000, "reasoning_parser": "qwen3"}), topology(1))
    assert specs == (RankSpec(0, "solo", (*SGLANG, "--tp-size", "1", *SGLANG_TUNING), rank_vars(0, 1), 0, None, 30000),)


def test_sglang_two_nodes_dist_init_on_the_head() -> None:
    specs = SglangRuntime().build(request({"port": 30000, "reasoning_parser": "qwen3"}), topology(2))
    common = (*SGLANG, "--tp-size", "2", *SGLANG_TUNING, "--dist-init-addr", "10.0.0.11:25000", "--nnodes", "2")
    assert specs == (
        RankSpec(0, "head", (*common, "--node-rank", "0"), rank_vars(0, 2), 0, 25000, 30000),
        RankSpec(1, "worker", (*common, "--node-rank", "1"), rank_vars(1, 2), 1, None, None),
    )


def test_sglang_template_with_tp_prefix_and_dist_init_is_not_duplicated() -> None:
    command = (
        "sglang",
        "serve",
        "--model-path",
        "m",
        "--tp",
        "2",
        "--dist-init-addr",
        "10.0.0.11:26000",
        "--port",
        "1",
    )
    head, worker = SglangRuntime().build(request(command=command), topology(2))
    assert head.argv == (*command, "--nnodes", "2", "--node-rank", "0")
    assert worker.argv == (*command, "--nnodes", "2", "--node-rank", "1")
    assert (head.wait_port, head.api_port) == (26000, 1)


def test_sglang_aliases_first_set_wins() -> None:
    (solo,) = SglangRuntime().build(
        request({"gpu_memory_utilization": None, "mem_fraction_static": 0.38, "radix_cache": False}), topology(1)
    )
    assert solo.argv == (
        *("sglang", "serve", "--model-path", "Qwen/Qwen3-1.7B", "--host", "0.0.0.0", "--port", "8000"),
        *("--tp-size", "1", "--mem-fraction-static", "0.38", "--context-length", "8192", "--disable-radix-cache"),
    )


def test_sglang_rejects_a_per_rank_flag_in_the_template() -> None:
    with pytest.raises(RecipeError, match="--node-rank"):
        SglangRuntime().build(request(command=("sglang", "serve", "--node-rank", "0")), topology(2))


# --- llama-cpp ----------------------------------------------------------------------------------------------------

GGUF = "Qwen/Qwen3-1.7B-GGUF:Q8_0"
LLAMA = ("llama-server", "-hf", GGUF, "--host", "0.0.0.0", "--port", "8000", "--ctx-size", "8192")


def test_llama_solo() -> None:
    specs = LlamaCppRuntime().build(request({"n_gpu_layers": 99}, model=GGUF), topology(1))
    assert specs == (RankSpec(0, "solo", (*LLAMA, "--n-gpu-layers", "99"), rank_vars(0, 1), 0, None, 8000),)


def test_llama_two_nodes_rpc_workers_first_then_the_head() -> None:
    specs = LlamaCppRuntime().build(request({"n_gpu_layers": 99}, model=GGUF), topology(2))
    assert specs == (
        RankSpec(
            0, "head", (*LLAMA, "--n-gpu-layers", "99", "--rpc", "10.0.0.12:50052"), rank_vars(0, 2), 1, None, 8000
        ),
        RankSpec(
            1, "worker", ("rpc-server", "--host", "10.0.0.12", "--port", "50052"), rank_vars(1, 2), 0, 50052, None
        ),
    )


def test_llama_four_nodes_lists_every_worker_and_binds_each_to_its_own_address() -> None:
    specs = LlamaCppRuntime().build(request({"rpc_port": 50100}, model=GGUF), topology(4))
    assert specs[0].argv[-2:] == ("--rpc", "10.0.0.12:50100,10.0.0.13:50100,10.0.0.14:50100")
    assert [s.argv for s in specs[1:]] == [
        ("rpc-server", "--host", f"10.0.0.1{rank + 1}", "--port", "50100") for rank in (1, 2, 3)
    ]
    assert [(s.start_group, s.wait_port) for s in specs] == [(1, None), (0, 50100), (0, 50100), (0, 50100)]


def test_llama_model_forms() -> None:
    (solo,) = LlamaCppRuntime().build(request(model="/models/q.gguf"), topology(1))
    assert solo.argv[:3] == ("llama-server", "-m", "/models/q.gguf")
    (solo,) = LlamaCppRuntime().build(request(model="unsloth/Qwen3-GGUF"), topology(1))
    assert solo.argv[:3] == ("llama-server", "-hf", "unsloth/Qwen3-GGUF")


def test_llama_rejects_a_non_gguf_model() -> None:
    with pytest.raises(RecipeError, match="llama-cpp needs a GGUF model"):
        LlamaCppRuntime().build(request(model="Qwen/Qwen3-1.7B"), topology(1))
    assert LlamaCppRuntime().validate(request(model="Qwen/Qwen3-1.7B"))


def test_llama_template_is_used_as_given_and_model_is_not_checked() -> None:
    command = ("llama-server", "-m", "/cache/x.gguf", "--port", "8001", "--flash-attn", "on")
    head, _ = LlamaCppRuntime().build(request(command=command), topology(2))
    assert head.argv == (*command, "--rpc", "10.0.0.12:50052")
    assert head.api_port == 8001


def test_llama_flash_attn_bool_is_on_off() -> None:
    (solo,) = LlamaCppRuntime().build(request({"flash_attn": True, "webui": False}, model=GGUF), topology(1))
    assert solo.argv[-3:] == ("--flash-attn", "on", "--no-webui")


def test_llama_defaults() -> None:
    assert LlamaCppRuntime().defaults() == {"port": 8080, "host": "0.0.0.0", "n_gpu_layers": 99}


# --- eugr-vllm ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "fallback"),
    [
        ("vllm-node", "ghcr.io/spark-arena/dgx-vllm-eugr-nightly:latest"),
        ("vllm-node:latest", "ghcr.io/spark-arena/dgx-vllm-eugr-nightly:latest"),
        ("vllm-node-tf5", "ghcr.io/spark-arena/dgx-vllm-eugr-nightly-tf5:latest"),
        ("vllm-node-b12x", "ghcr.io/spark-arena/dgx-vllm-eugr-nightly-b12x:latest"),
        ("vllm-node-tf5-b12x", None),
        ("vllm-thor-tf5", None),
        ("ghcr.io/someone/vllm-node:1", None),
        ("scitrera/dgx-spark-vllm:latest", None),
    ],
)
def test_eugr_fallback_image(image: str, fallback: str | None) -> None:
    assert EugrVllmRuntime().fallback_image(image) == fallback


def test_eugr_launches_like_vllm_ray() -> None:
    req = request({"served_model_name": "glm"})
    for nodes in (1, 2):
        assert EugrVllmRuntime().build(req, topology(nodes)) == VllmRayRuntime().build(req, topology(nodes))


def test_eugr_reports_build_args_it_does_not_build() -> None:
    req = request(runtime_config={"build_args": ["--pre-tf"]})
    req = dataclasses.replace(req, image="vllm-node-tf5")
    assert EugrVllmRuntime().validate(req) == [
        "eugr-vllm: build_args --pre-tf are not used: sparkrun does not build images, it runs 'vllm-node-tf5' as "
        "found on the hosts; when it is absent on the head, ghcr.io/spark-arena/dgx-vllm-eugr-nightly-tf5:latest "
        "runs instead"
    ]
    assert EugrVllmRuntime().validate(request()) == []


def test_a_recipes_own_mem_fraction_static_beats_the_sglang_default() -> None:
    rt = SglangRuntime()
    settings = {**rt.defaults(), "mem_fraction_static": 0.38}
    bare = dataclasses.replace(request(), settings=settings)
    (solo,) = rt.build(bare, topology(1))
    assert solo.argv[solo.argv.index("--mem-fraction-static") + 1] == "0.38"
    cli = dataclasses.replace(bare, settings={**settings, "gpu_memory_utilization": 0.5})  # --gpu-mem wins
    (solo,) = rt.build(cli, topology(1))
    assert solo.argv[solo.argv.index("--mem-fraction-static") + 1] == "0.5"
