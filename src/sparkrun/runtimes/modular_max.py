"""Modular MAX runtime (`max serve --model MODEL …`), single node only.

MAX runs a model on the GPUs of one machine (`--devices gpu:0`); a DGX Spark has one GPU, so a plan with tensor
parallel > 1 or more than one host is refused. One rank, role `solo`.
"""

from __future__ import annotations

from typing import ClassVar, Final

from sparkrun.errors import RecipeError
from sparkrun.runtimes.base import RankSpec, ServeRequest, Topology
from sparkrun.runtimes.engine import CommandShape, EngineRuntime
from sparkrun.runtimes.flags import FlagMap, render_flags, switch, value
from sparkrun.runtimes.ranks import NodeFlag, missing_node_flags

DEFAULT_IMAGE: Final = "modular/max-nvidia-full:latest"
DEFAULT_PORT: Final = 8000
DEVICES: Final = "gpu:0"

# Settings key → `max serve` flag, in emit order (checked against the real list, flags/max-serve.txt).
MAX_FLAGS: Final[FlagMap] = {
    "host": value("--host"),
    "port": value("--port"),
    "max_model_len": value("--max-length"),
    "max_length": value("--max-length"),
    "max_num_seqs": value("--max-batch-size"),
    "max_batch_size": value("--max-batch-size"),
    "max_num_batched_tokens": value("--max-batch-input-tokens"),
    "served_model_name": value("--served-model-name"),
    "gpu_memory_utilization": value("--device-memory-utilization"),
    "kv_cache_format": value("--kv-cache-format"),
    "quantization_encoding": value("--quantization-encoding"),
    "weight_path": value("--weight-path"),
    "trust_remote_code": switch("--trust-remote-code", off="--no-trust-remote-code"),
    "enable_prefix_caching": switch("--enable-prefix-caching", off="--no-enable-prefix-caching"),
    "enable_chunked_prefill": switch("--enable-chunked-prefill", off="--no-enable-chunked-prefill"),
    "enable_structured_output": switch("--enable-structured-output", off="--no-enable-structured-output"),
    "chat_template": value("--chat-template"),
    "tool_call_parser": value("--tool-parser"),
    "reasoning_parser": value("--reasoning-parser"),
}


def build_max_command(request: ServeRequest) -> tuple[str, ...]:
    return ("max", "serve", "--model", request.model, *render_flags(MAX_FLAGS, request.settings))


class ModularMaxRuntime(EngineRuntime):
    name: ClassVar[str] = "modular-max"
    description: ClassVar[str] = "Modular MAX `max serve`; one host, one GPU (--devices gpu:0)"
    family: ClassVar[str] = "modular-max"
    default_image: ClassVar[str] = DEFAULT_IMAGE
    default_port: ClassVar[int] = DEFAULT_PORT
    flags: ClassVar[FlagMap] = MAX_FLAGS
    command_shape: ClassVar[CommandShape] = CommandShape(("max",), "max serve …", width=2, whole_name=True)

    def settings_command(self, request: ServeRequest, topology: Topology) -> tuple[str, ...]:
        return build_max_command(request)

    def build(self, request: ServeRequest, topology: Topology) -> tuple[RankSpec, ...]:
        if not topology.is_solo or topology.tensor_parallel > 1 or topology.pipeline_parallel > 1:
            raise RecipeError(
                f"modular-max runs on one host with one GPU, but this plan has {topology.num_nodes} host(s), "
                f"tensor_parallel {topology.tensor_parallel} and pipeline_parallel {topology.pipeline_parallel}",
                hint="run it with --tp 1 on one host (MAX does not span machines; a DGX Spark has one GPU)",
            )
        serve = self.serve_command(request, topology)
        present = (*serve, *request.extra_args)
        devices = NodeFlag(("--devices",), "--devices", DEVICES)
        argv = (*serve, *missing_node_flags(present, (devices,)), *request.extra_args)
        return (self.solo_rank(request, topology, argv),)
