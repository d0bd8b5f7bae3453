"""SGLang runtime.

Solo: `sglang serve --model-path MODEL …`. N nodes: every rank runs the same command plus `--dist-init-addr
HEAD:25000 --nnodes N --node-rank r`; the head (rank 0, group 0) is waited on the dist-init port before the
workers (group 1) start; the API is served by the head. Every rank runs the engine, so extra args go to every rank.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from sparkrun.runtimes.base import RankSpec, ServeRequest, Topology
from sparkrun.runtimes.engine import CommandShape, EngineRuntime, head_first_rank, with_parallel_sizes
from sparkrun.runtimes.flags import FlagMap, flag_value, render_flags, switch, value
from sparkrun.runtimes.ranks import NodeFlag, missing_node_flags, parallel_node_flags, port_setting, to_port

DEFAULT_IMAGE: Final = "scitrera/dgx-spark-sglang:latest"
DEFAULT_PORT: Final = 30000
DEFAULT_INIT_PORT: Final = 25000

# Settings key → sglang flag, in emit order. Aliases that map to the same flag follow their canonical key (the
# first one set wins): `gpu_memory_utilization` before `mem_fraction_static`, `max_model_len` before
# `context_length`, `max_num_seqs` before `max_running_requests`, `max_num_batched_tokens` before
# `chunked_prefill_size`.
SGLANG_FLAGS: Final[FlagMap] = {
    "host": value("--host"),
    "port": value("--port"),
    "served_model_name": value("--served-model-name"),
    "model_revision": value("--revision"),
    "tensor_parallel": value("--tp-size"),
    "pipeline_parallel": value("--pp-size"),
    "data_parallel": value("--dp-size"),
    "gpu_memory_utilization": value("--mem-fraction-static"),
    "mem_fraction_static": value("--mem-fraction-static"),
    "max_model_len": value("--context-length"),
    "context_length": value("--context-length"),
    "max_num_seqs": value("--max-running-requests"),
    "max_running_requests": value("--max-running-requests"),
    "max_num_batched_tokens": value("--chunked-prefill-size"),
    "chunked_prefill_size": value("--chunked-prefill-size"),
    "max_total_tokens": value("--max-total-tokens"),
    "kv_cache_dtype": value("--kv-cache-dtype"),
    "dtype": value("--dtype"),
    "quantization": value("--quantization"),
    "load_format": value("--load-format"),
    "trust_remote_code": switch("--trust-remote-code"),
    "attention_backend": value("--attention-backend"),
    "moe_runner_backend": value("--moe-runner-backend"),
    "fp4_gemm_backend": value("--fp4-gemm-backend"),
    "mamba_ssm_dtype": value("--mamba-ssm-dtype"),
    "language_model_only": switch("--language-model-only"),
    "radix_cache": switch(None, off="--disable-radix-cache"),
    "cuda_graph": switch(None, off="--disable-cuda-graph"),
    "enable_torch_compile": switch("--enable-torch-compile"),
    "enable_metrics": switch("--enable-metrics"),
    "speculative_algorithm": value("--speculative-algorithm"),
    "speculative_draft_model_path": value("--speculative-draft-model-path"),
    "speculative_draft_model": value("--speculative-draft-model-path"),
    "speculative_draft_model_quantization": value("--speculative-draft-model-quantization"),
    "speculative_num_steps": value("--speculative-num-steps"),
    "speculative_eagle_topk": value("--speculative-eagle-topk"),
    "speculative_num_draft_tokens": value("--speculative-num-draft-tokens"),
    "speculative_dspark_block_size": value("--speculative-dspark-block-size"),
    "chat_template": value("--chat-template"),
    "tool_call_parser": value("--tool-call-parser"),
    "reasoning_parser": value("--reasoning-parser"),
}

# `--tp` is how some recipes spell it (argparse accepts the unique prefix).
_TP: Final = ("--tp-size", "--tensor-parallel-size", "--tp")
_PP: Final = ("--pp-size", "--pipeline-parallel-size", "--pp")
_INIT: Final = ("--dist-init-addr", "--nccl-init-addr")


def build_sglang_command(request: ServeRequest, topology: Topology) -> tuple[str, ...]:
    """`sglang serve --model-path MODEL …` from the settings; parallel sizes from the topology."""
    values = with_parallel_sizes(request, topology)
    return ("sglang", "serve", "--model-path", request.model, *render_flags(SGLANG_FLAGS, values))


def _init_port(present: tuple[str, ...], request: ServeRequest) -> int:
    """The dist-init port: from a `--dist-init-addr HOST:PORT` the template carries, else `init_port` (25000)."""
    given = flag_value(present, _INIT)
    if given is not None and ":" in given:
        return to_port(given.rsplit(":", 1)[1], "the port of --dist-init-addr")
    return port_setting(request, "init_port", DEFAULT_INIT_PORT)


class SglangRuntime(EngineRuntime):
    name: ClassVar[str] = "sglang"
    description: ClassVar[str] = "SGLang; multi-node through --dist-init-addr/--nnodes/--node-rank"
    family: ClassVar[str] = "sglang"
    default_image: ClassVar[str] = DEFAULT_IMAGE
    default_port: ClassVar[int] = DEFAULT_PORT
    flags: ClassVar[FlagMap] = SGLANG_FLAGS
    launch_keys: ClassVar[frozenset[str]] = frozenset({"init_port"})
    # The default is spelled the SGLang way so that a recipe's own `mem_fraction_static` beats it, while
    # `gpu_memory_utilization` (CLI --gpu-mem, or the recipe) still wins over both.
    engine_defaults: ClassVar[Mapping[str, Any]] = {"mem_fraction_static": 0.8}
    command_shape: ClassVar[CommandShape] = CommandShape(("sglang",), "sglang serve …", width=4)

    def settings_command(self, request: ServeRequest, topology: Topology) -> tuple[str, ...]:
        return build_sglang_command(request, topology)

    def build(self, request: ServeRequest, topology: Topology) -> tuple[RankSpec, ...]:
        serve = self.serve_command(request, topology)
        present = (*serve, *request.extra_args)
        if topology.is_solo:
            return (self.solo_rank(request, topology, present),)
        api_port = self.api_port(request, present)
        init_port = _init_port(present, request)
        shared = (
            *parallel_node_flags(topology, _TP, _PP),
            NodeFlag(_INIT, _INIT[0], f"{topology.head_address}:{init_port}"),
            NodeFlag(("--nnodes",), "--nnodes", str(topology.num_nodes)),
        )
        specs = []
        for rank in range(topology.num_nodes):
            own = NodeFlag(("--node-rank",), "--node-rank", str(rank), per_rank=True)
            argv = (*serve, *missing_node_flags(present, (*shared, own)), *request.extra_args)
            env = self.rank_env(request, topology, rank)
            specs.append(head_first_rank(rank, argv, env, wait_port=init_port, api_port=api_port))
        return tuple(specs)
