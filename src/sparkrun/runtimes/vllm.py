"""vLLM runtimes: `vllm-distributed` (vLLM's own multi-node launcher) and `vllm-ray` (a Ray cluster).

The recipes layer resolves `runtime: vllm` to `vllm-ray` when the command has `--distributed-executor-backend ray`,
to `vllm-distributed` otherwise.

vllm-distributed, N nodes: every rank runs `vllm serve … --nnodes N --node-rank r --master-addr HEAD --master-port
25000`; the head starts first (group 0) and the workers (`--headless`, group 1) once the master port listens.

vllm-ray, N nodes: the head container runs `ray_head.sh` (Ray head, wait for N nodes, then `exec vllm serve …
--distributed-executor-backend ray`), group 0, waited on the Ray port; each worker runs `ray start --address
HEAD:46379 --block` (group 1). The serve command runs on the head only, so extra args go there only.

Solo (one host): one rank, role `solo`, the plain serve command.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from sparkrun.errors import RecipeError
from sparkrun.runtimes.base import RankSpec, ServeRequest, Topology
from sparkrun.runtimes.container_scripts import RAY_HEAD, wrap_command
from sparkrun.runtimes.engine import CommandShape, EngineRuntime, head_first_rank, with_parallel_sizes
from sparkrun.runtimes.flags import FlagMap, flag_value, render_flags, switch, value
from sparkrun.runtimes.ranks import (
    NodeFlag,
    launch_setting,
    missing_node_flags,
    parallel_node_flags,
    port_in_argv,
    port_setting,
    to_bool,
)

DEFAULT_IMAGE: Final = "ghcr.io/spark-arena/dgx-vllm-eugr-nightly-tf5:latest"
EUGR_NIGHTLY: Final = "ghcr.io/spark-arena/dgx-vllm-eugr-nightly"
DEFAULT_INIT_PORT: Final = 25000
DEFAULT_RAY_PORT: Final = 46379
DEFAULT_DASHBOARD_PORT: Final = 8265
DEFAULT_RAY_WAIT_TIMEOUT_S: Final = 600
RAY_POLL_S: Final = 2

# Settings key → `vllm serve` flag, in the order they are emitted. Checked against the real flag list in the tests.
VLLM_FLAGS: Final[FlagMap] = {
    "host": value("--host"),
    "port": value("--port"),
    "served_model_name": value("--served-model-name", multi=True),
    "model_revision": value("--revision"),
    "tensor_parallel": value("--tensor-parallel-size"),
    "pipeline_parallel": value("--pipeline-parallel-size"),
    "data_parallel": value("--data-parallel-size"),
    "gpu_memory_utilization": value("--gpu-memory-utilization"),
    "max_model_len": value("--max-model-len"),
    "max_num_seqs": value("--max-num-seqs"),
    "max_num_batched_tokens": value("--max-num-batched-tokens"),
    "kv_cache_dtype": value("--kv-cache-dtype"),
    "block_size": value("--block-size"),
    "dtype": value("--dtype"),
    "quantization": value("--quantization"),
    "load_format": value("--load-format"),
    "tokenizer_mode": value("--tokenizer-mode"),
    "seed": value("--seed"),
    "cpu_offload_gb": value("--cpu-offload-gb"),
    "trust_remote_code": switch("--trust-remote-code", off="--no-trust-remote-code"),
    "enforce_eager": switch("--enforce-eager", off="--no-enforce-eager"),
    "enable_prefix_caching": switch("--enable-prefix-caching", off="--disable-prefix-caching"),
    "enable_chunked_prefill": switch("--enable-chunked-prefill", off="--disable-chunked-prefill"),
    "async_scheduling": switch("--async-scheduling", off="--no-async-scheduling"),
    "enable_expert_parallel": switch("--enable-expert-parallel", off="--disable-expert-parallel"),
    "language_model_only": switch("--language-model-only", off="--no-language-model-only"),
    "scheduler_reserve_full_isl": switch("--scheduler-reserve-full-isl", off="--no-scheduler-reserve-full-isl"),
    "enable_flashinfer_autotune": switch("--enable-flashinfer-autotune", off="--disable-flashinfer-autotune"),
    "attention_backend": value("--attention-backend"),
    "moe_backend": value("--moe-backend"),
    "mamba_backend": value("--mamba-backend"),
    "mamba_ssm_cache_dtype": value("--mamba-ssm-cache-dtype"),
    "mamba_cache_mode": value("--mamba-cache-mode"),
    "mm_encoder_tp_mode": value("--mm-encoder-tp-mode"),
    "limit_mm_per_prompt": value("--limit-mm-per-prompt"),
    "max_cudagraph_capture_size": value("--max-cudagraph-capture-size"),
    "optimization_level": value("--optimization-level"),
    "performance_mode": value("--performance-mode"),
    "compilation_config": value("--compilation-config"),
    "speculative_config": value("--speculative-config"),
    "hf_overrides": value("--hf-overrides"),
    "override_generation_config": value("--override-generation-config"),
    "reasoning_config": value("--reasoning-config"),
    "chat_template": value("--chat-template"),
    "default_chat_template_kwargs": value("--default-chat-template-kwargs"),
    "chat_template_kwargs": value("--default-chat-template-kwargs"),
    "enable_auto_tool_choice": switch("--enable-auto-tool-choice", off="--disable-auto-tool-choice"),
    "tool_call_parser": value("--tool-call-parser"),
    "reasoning_parser": value("--reasoning-parser"),
}

_TP: Final = ("--tensor-parallel-size", "-tp")
_PP: Final = ("--pipeline-parallel-size", "-pp")
_BACKEND: Final = ("--distributed-executor-backend",)
_ADDRESS_VARS: Final = ("NODE_IP", "VLLM_HOST_IP")
# Ray's memory monitor misreads the Spark's unified memory and kills workers; the old tool turned it off too.
_RAY_ENV: Final[Mapping[str, str]] = {"RAY_memory_monitor_refresh_ms": "0"}


def build_vllm_command(request: ServeRequest, topology: Topology) -> tuple[str, ...]:
    """`vllm serve MODEL …` from the settings, for recipes without `command:`. The parallel sizes come from the
    topology (the hosts actually launched); pipeline parallel is left out when it is 1."""
    return ("vllm", "serve", request.model, *render_flags(VLLM_FLAGS, with_parallel_sizes(request, topology)))


def eugr_nightly_fallback(image: str) -> str | None:
    """The published twin of an eugr local build tag (`vllm-node`, `vllm-node-tf5`, `vllm-node-b12x`, with or
    without `:tag`): `ghcr.io/spark-arena/dgx-vllm-eugr-nightly[-tf5|-b12x]:latest`. None for anything else."""
    name = image.split(":", 1)[0]
    if "/" in name or not name.startswith("vllm-node"):
        return None
    words = set(name.removeprefix("vllm-node").split("-")) - {""}
    variants = words & {"tf5", "b12x"}
    if len(variants) > 1:
        return None
    suffix = f"-{variants.pop()}" if variants else ""
    return f"{EUGR_NIGHTLY}{suffix}:latest"


class VllmRuntimeBase(EngineRuntime):
    """What both vLLM runtimes share: flag map, defaults, the solo rank, the eugr image fallback."""

    family: ClassVar[str] = "vllm"
    default_image: ClassVar[str] = DEFAULT_IMAGE
    default_port: ClassVar[int] = 8000
    flags: ClassVar[FlagMap] = VLLM_FLAGS
    engine_defaults: ClassVar[Mapping[str, Any]] = {"gpu_memory_utilization": 0.8}
    # `vllm serve`, or `python3 -m vllm.entrypoints.openai.api_server`
    command_shape: ClassVar[CommandShape] = CommandShape(("vllm",), "vllm serve …", width=4)
    address_vars: ClassVar[tuple[str, ...]] = _ADDRESS_VARS

    def settings_command(self, request: ServeRequest, topology: Topology) -> tuple[str, ...]:
        return build_vllm_command(request, topology)

    def fallback_image(self, image: str) -> str | None:
        return eugr_nightly_fallback(image)

    def solo(self, request: ServeRequest, topology: Topology) -> RankSpec:
        return self.solo_rank(request, topology, (*self.serve_command(request, topology), *request.extra_args))


class VllmDistributedRuntime(VllmRuntimeBase):
    name: ClassVar[str] = "vllm-distributed"
    description: ClassVar[str] = "vLLM; multi-node through vLLM's own launcher (--nnodes/--node-rank, headless workers)"
    launch_keys: ClassVar[frozenset[str]] = frozenset({"init_port"})

    def build(self, request: ServeRequest, topology: Topology) -> tuple[RankSpec, ...]:
        if topology.is_solo:
            return (self.solo(request, topology),)
        serve = self.serve_command(request, topology)
        present = (*serve, *request.extra_args)
        if flag_value(present, _BACKEND) == "ray":
            raise RecipeError(
                "the command sets --distributed-executor-backend ray, which needs a Ray cluster",
                hint="use `runtime: vllm-ray` (or `runtime: vllm`, which picks it from the command)",
            )
        master_port = port_in_argv(
            present, ("--master-port",), port_setting(request, "init_port", DEFAULT_INIT_PORT), "--master-port"
        )
        shared = (
            *parallel_node_flags(topology, _TP, _PP),
            NodeFlag(("--nnodes", "-n"), "--nnodes", str(topology.num_nodes)),
            NodeFlag(("--master-addr",), "--master-addr", topology.head_address),
            NodeFlag(("--master-port",), "--master-port", str(master_port)),
        )
        return tuple(
            self._rank(request, topology, rank, serve=serve, shared=shared, master_port=master_port)
            for rank in range(topology.num_nodes)
        )

    def _rank(
        self,
        request: ServeRequest,
        topology: Topology,
        rank: int,
        *,
        serve: tuple[str, ...],
        shared: tuple[NodeFlag, ...],
        master_port: int,
    ) -> RankSpec:
        own = [NodeFlag(("--node-rank", "-r"), "--node-rank", str(rank), per_rank=True)]
        if rank > 0:
            own.append(NodeFlag(("--headless",), "--headless", None, per_rank=True))
        added = missing_node_flags((*serve, *request.extra_args), (*shared, *own))
        argv = (*serve, *added, *request.extra_args)
        env = self.rank_env(request, topology, rank)
        return head_first_rank(rank, argv, env, wait_port=master_port, api_port=self.api_port(request, argv))


class VllmRayRuntime(VllmRuntimeBase):
    name: ClassVar[str] = "vllm-ray"
    description: ClassVar[str] = "vLLM on a Ray cluster (--distributed-executor-backend ray); serve runs on the head"
    launch_keys: ClassVar[frozenset[str]] = frozenset({"ray_port", "dashboard", "dashboard_port", "ray_wait_timeout"})
    base_env: ClassVar[Mapping[str, str]] = _RAY_ENV

    def build(self, request: ServeRequest, topology: Topology) -> tuple[RankSpec, ...]:
        if topology.is_solo:
            return (self.solo(request, topology),)
        ray_port = port_setting(request, "ray_port", DEFAULT_RAY_PORT)
        head = self._head(request, topology, ray_port)
        workers = tuple(self._worker(request, topology, rank, ray_port) for rank in range(1, topology.num_nodes))
        return (head, *workers)

    def head_serve_command(self, request: ServeRequest, topology: Topology) -> tuple[str, ...]:
        serve = self.serve_command(request, topology)
        present = (*serve, *request.extra_args)
        backend = flag_value(present, _BACKEND)
        if backend not in (None, "ray"):
            raise RecipeError(
                f"runtime {self.name} runs vLLM on a Ray cluster, but the command sets "
                f"--distributed-executor-backend {backend}",
                hint="use `runtime: vllm-distributed` for vLLM's own multi-node launcher",
            )
        needed = (*parallel_node_flags(topology, _TP, _PP), NodeFlag(_BACKEND, _BACKEND[0], "ray"))
        return (*serve, *missing_node_flags(present, needed), *request.extra_args)

    def _head(self, request: ServeRequest, topology: Topology, ray_port: int) -> RankSpec:
        serve = self.head_serve_command(request, topology)
        # Off unless asked for: the Ray dashboard's job API runs arbitrary code for anyone who can reach it.
        dashboard = to_bool(launch_setting(request, "dashboard", False), "dashboard")
        dashboard_port = port_setting(request, "dashboard_port", DEFAULT_DASHBOARD_PORT) if dashboard else None
        timeout = launch_setting(request, "ray_wait_timeout", DEFAULT_RAY_WAIT_TIMEOUT_S)
        if not str(timeout).isdigit():
            raise RecipeError(f"ray_wait_timeout must be a whole number of seconds, got {timeout!r}")
        args = (
            str(ray_port),
            topology.head_address,
            str(topology.num_nodes),
            str(timeout),
            str(RAY_POLL_S),
            "" if dashboard_port is None else str(dashboard_port),
        )
        argv = wrap_command(RAY_HEAD, "sparkrun-ray-head", args, serve)
        env = self.rank_env(request, topology, 0)
        api_port = self.api_port(request, serve)
        return RankSpec(rank=0, role="head", argv=argv, env=env, wait_port=ray_port, api_port=api_port)

    def _worker(self, request: ServeRequest, topology: Topology, rank: int, ray_port: int) -> RankSpec:
        argv = (
            "ray",
            "start",
            "--address",
            f"{topology.head_address}:{ray_port}",
            "--node-ip-address",
            topology.addresses[rank],
            "--block",
            "--disable-usage-stats",
        )
        return RankSpec(rank, "worker", argv, self.rank_env(request, topology, rank), start_group=1)
