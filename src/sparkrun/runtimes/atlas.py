"""Atlas runtime: the `spark` binary of the Atlas inference engine (`spark serve MODEL …`).

Solo: `spark serve MODEL --port 8888 …`. N nodes: every rank runs the engine with the NCCL bootstrap flags `--rank r
--world-size N --master-addr HEAD --master-port 25000` and the parallel sizes `--tp-size` (and `--ep-size` when the
recipe sets `expert_parallel`); ranks > 0 get `--port 0` (only the head serves HTTP). The head (group 0) is waited on
the master port before the others (group 1) start. Every rank runs the engine, so extra args go to every rank.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from sparkrun.errors import RecipeError
from sparkrun.runtimes.base import RankSpec, ServeRequest, Topology
from sparkrun.runtimes.engine import PORT_FLAGS, CommandShape, EngineRuntime, head_first_rank
from sparkrun.runtimes.flags import FlagMap, find_flag, render_flags, switch, value
from sparkrun.runtimes.ranks import NodeFlag, launch_setting, missing_node_flags, port_setting, rank_env

DEFAULT_IMAGE: Final = "azeezish/atlas-gb10:latest"
DEFAULT_PORT: Final = 8888
DEFAULT_MASTER_PORT: Final = 25000
# What the older sparkrun exported before `spark serve` on multi-node launches (GPUDirect over C2C off on GB10).
_MULTI_NODE_ENV: Final[Mapping[str, str]] = {"NCCL_NET_GDR_C2C": "0"}

# Settings key → `spark serve` flag, in emit order (checked against the real list, flags/atlas.txt).
ATLAS_FLAGS: Final[FlagMap] = {
    "host": value("--host"),
    "port": value("--port"),
    "served_model_name": value("--model-name"),
    "gpu_memory_utilization": value("--gpu-memory-utilization"),
    "max_model_len": value("--max-seq-len"),
    "max_seq_len": value("--max-seq-len"),
    "max_num_seqs": value("--max-num-seqs"),
    "max_num_batched_tokens": value("--max-prefill-tokens"),
    "max_prefill_tokens": value("--max-prefill-tokens"),
    "max_batch_size": value("--max-batch-size"),
    "kv_cache_dtype": value("--kv-cache-dtype"),
    "block_size": value("--block-size"),
    "scheduling_policy": value("--scheduling-policy"),
    "tool_call_parser": value("--tool-call-parser"),
    "default_chat_template_kwargs": value("--default-chat-template-kwargs"),
    "chat_template_kwargs": value("--default-chat-template-kwargs"),
    "max_thinking_budget": value("--max-thinking-budget"),
    "disable_thinking": switch("--disable-thinking"),
    "enable_prefix_caching": switch("--enable-prefix-caching"),
    "speculative": switch("--speculative"),
    "draft_model": value("--draft-model"),
    "num_drafts": value("--num-drafts"),
    "mtp_quantization": value("--mtp-quantization"),
    "kernel_target": value("--kernel-target"),
    "swap_space_gb": value("--swap-space-gb"),
    "request_timeout": value("--request-timeout"),
}

_RANK: Final = ("--rank",)


def build_atlas_command(request: ServeRequest, *, port: int | None = None) -> tuple[str, ...]:
    """`spark serve MODEL …` from the settings; `port` replaces the settings' port (0 on ranks > 0)."""
    values: dict[str, Any] = dict(request.settings)
    if port is not None:
        values["port"] = port
    return ("spark", "serve", request.model, *render_flags(ATLAS_FLAGS, values))


def _expert_parallel(request: ServeRequest, topology: Topology) -> int | None:
    raw = launch_setting(request, "expert_parallel", None)
    if raw is None:
        return None
    if isinstance(raw, bool) or not str(raw).strip().isdigit() or int(str(raw)) < 1:
        raise RecipeError(f"expert_parallel must be a whole number of at least 1, got {raw!r}")
    ep = int(str(raw))
    tp, world = topology.tensor_parallel, topology.num_nodes
    if ep != tp and tp * ep != world:
        raise RecipeError(
            f"atlas needs world size = tp_size x ep_size or tp_size = ep_size; got tp {tp}, ep {ep} on {world} hosts",
            hint="set expert_parallel to the tensor parallel size, or give tp x ep hosts",
        )
    return ep


class AtlasRuntime(EngineRuntime):
    name: ClassVar[str] = "atlas"
    description: ClassVar[str] = "Atlas `spark serve`; multi-node through NCCL ranks (--rank, --world-size)"
    family: ClassVar[str] = "atlas"
    default_image: ClassVar[str] = DEFAULT_IMAGE
    default_port: ClassVar[int] = DEFAULT_PORT
    flags: ClassVar[FlagMap] = ATLAS_FLAGS
    launch_keys: ClassVar[frozenset[str]] = frozenset({"init_port", "expert_parallel"})
    command_shape: ClassVar[CommandShape] = CommandShape(("spark", "atlas"), "spark serve …", width=4, whole_name=True)

    def settings_command(self, request: ServeRequest, topology: Topology) -> tuple[str, ...]:
        return build_atlas_command(request)

    def _worker_serve(self, request: ServeRequest, topology: Topology) -> tuple[str, ...]:
        if request.command is None:
            return build_atlas_command(request, port=0)
        return self.serve_command(request, topology)

    def build(self, request: ServeRequest, topology: Topology) -> tuple[RankSpec, ...]:
        if topology.pipeline_parallel > 1:
            raise RecipeError("atlas has no pipeline parallelism", hint="use tensor_parallel (--tp) instead")
        head_serve = self.serve_command(request, topology)
        if topology.is_solo:
            return (self.solo_rank(request, topology, (*head_serve, *request.extra_args)),)
        api_port = self.api_port(request, (*head_serve, *request.extra_args))
        master_port = port_setting(request, "init_port", DEFAULT_MASTER_PORT)
        ep = _expert_parallel(request, topology)
        shared = [
            NodeFlag(("--tp-size",), "--tp-size", str(topology.tensor_parallel)),
            NodeFlag(("--world-size",), "--world-size", str(topology.num_nodes)),
            NodeFlag(("--master-addr",), "--master-addr", topology.head_address),
            NodeFlag(("--master-port",), "--master-port", str(master_port)),
        ]
        if ep is not None:
            shared.insert(1, NodeFlag(("--ep-size",), "--ep-size", str(ep)))
        specs = []
        for rank in range(topology.num_nodes):
            serve = head_serve if rank == 0 else self._worker_serve(request, topology)
            present = (*serve, *request.extra_args)
            added = missing_node_flags(present, (*shared, NodeFlag(_RANK, "--rank", str(rank), per_rank=True)))
            if rank > 0 and find_flag(present, PORT_FLAGS) is None:
                added = (*added, "--port", "0")  # a template's own --port stays: each rank has its own host
            argv = (*serve, *added, *request.extra_args)
            env = rank_env(request, topology, rank, base=_MULTI_NODE_ENV)
            specs.append(head_first_rank(rank, argv, env, wait_port=master_port, api_port=api_port))
        return tuple(specs)
