"""tokenary runtime (`tokenary --model MODEL …`).

Solo: `tokenary --model MODEL … --server --port 8000 --tp-size 1`. N nodes: every rank runs `tokenary --model MODEL
… --rank r --world-size N --master-addr HEAD --master-port 25000 --tp-size N`; rank 0 also serves HTTP (`--server
--port P`), ranks > 0 are workers without HTTP. The head (group 0) is waited on the master port before the workers
(group 1) start. Every rank runs the engine, so extra args go to every rank.

The engine's flag list is UNVERIFIED (flags/tokenary.txt): only the flags the older sparkrun emitted are known.
"""

from __future__ import annotations

from typing import ClassVar, Final

from sparkrun.errors import RecipeError
from sparkrun.runtimes.base import RankSpec, ServeRequest, Topology
from sparkrun.runtimes.engine import PORT_FLAGS, CommandShape, EngineRuntime, head_first_rank
from sparkrun.runtimes.flags import FlagMap, find_flag, render_flags, switch, value
from sparkrun.runtimes.ranks import NodeFlag, missing_node_flags, port_setting, to_bool

DEFAULT_IMAGE: Final = "scitrera/tokenary:latest"
DEFAULT_PORT: Final = 8000
DEFAULT_MASTER_PORT: Final = 25000

# Settings key → tokenary flag, in emit order (checked against flags/tokenary.txt).
TOKENARY_FLAGS: Final[FlagMap] = {
    "host": value("--host"),
    "max_model_len": value("--max-model-len"),
    "max_num_seqs": value("--max-num-seqs"),
    "max_tokens": value("--max-tokens"),
    "dtype": value("--dtype"),
    "kv_cache_dtype": value("--kvcache-dtype"),
    "gpu_memory_utilization": value("--gpu-memory-utilization"),
    "prefill_chunk_size": value("--prefill-chunk-size"),
    "enable_prefix_caching": switch(None, off="--disable-prefix-cache"),
    "disable_prefix_cache": switch("--disable-prefix-cache"),
    "disable_reasoning": switch("--disable-reasoning"),
    "disable_cuda_graph": switch("--disable-cuda-graph"),
    "encode_only": switch("--encode-only"),
    "ner": switch("--ner"),
}
# Modes tokenary runs on one GPU only.
_SINGLE_RANK_MODES: Final = ("encode_only", "ner")
_SERVER: Final = ("--server",)


def build_tokenary_command(request: ServeRequest) -> tuple[str, ...]:
    return ("tokenary", "--model", request.model, *render_flags(TOKENARY_FLAGS, request.settings))


class TokenaryRuntime(EngineRuntime):
    name: ClassVar[str] = "tokenary"
    description: ClassVar[str] = "tokenary; multi-node through --rank/--world-size/--master-addr, rank 0 serves HTTP"
    family: ClassVar[str] = "tokenary"
    default_image: ClassVar[str] = DEFAULT_IMAGE
    default_port: ClassVar[int] = DEFAULT_PORT
    flags: ClassVar[FlagMap] = TOKENARY_FLAGS
    # `port` is not in the flag map: sparkrun adds `--server --port P` itself, on rank 0 only.
    launch_keys: ClassVar[frozenset[str]] = frozenset({"port", "init_port"})
    command_shape: ClassVar[CommandShape] = CommandShape(("tokenary",), "tokenary --model …", width=2)

    def settings_command(self, request: ServeRequest, topology: Topology) -> tuple[str, ...]:
        return build_tokenary_command(request)

    def _check(self, request: ServeRequest, topology: Topology) -> None:
        if topology.pipeline_parallel > 1:
            raise RecipeError("tokenary has no pipeline parallelism", hint="use tensor_parallel (--tp) instead")
        if topology.is_solo:
            return
        for mode in _SINGLE_RANK_MODES:
            if request.setting(mode) is not None and to_bool(request.setting(mode), mode):
                raise RecipeError(f"tokenary runs {mode} on one GPU only", hint="run it on one host (--tp 1)")

    def build(self, request: ServeRequest, topology: Topology) -> tuple[RankSpec, ...]:
        self._check(request, topology)
        serve = self.serve_command(request, topology)
        present = (*serve, *request.extra_args)
        port = self.api_port(request, present)
        http = (NodeFlag(_SERVER, "--server", None), NodeFlag(PORT_FLAGS, "--port", str(port)))
        tp = NodeFlag(("--tp-size",), "--tp-size", str(topology.tensor_parallel))
        if topology.is_solo:
            argv = (*serve, *missing_node_flags(present, (*http, tp)), *request.extra_args)
            return (self.solo_rank(request, topology, argv),)
        if find_flag(present, _SERVER) is not None:
            raise RecipeError(
                "the recipe's command: sets --server, which sparkrun gives rank 0 only on multi-node launches",
                hint="remove --server (and --port) from `command:`; set `port` in defaults instead",
            )
        master_port = port_setting(request, "init_port", DEFAULT_MASTER_PORT)
        shared = (
            NodeFlag(("--world-size",), "--world-size", str(topology.num_nodes)),
            NodeFlag(("--master-addr",), "--master-addr", topology.head_address),
            NodeFlag(("--master-port",), "--master-port", str(master_port)),
            tp,
        )
        # A template's --port belongs to the HTTP server: rank 0 only.
        worker_serve = _without_port(serve)
        specs = []
        for rank in range(topology.num_nodes):
            own = NodeFlag(("--rank",), "--rank", str(rank), per_rank=True)
            if rank == 0:
                argv = (*serve, *missing_node_flags(present, (own, *shared, *http)), *request.extra_args)
            else:
                added = missing_node_flags((*worker_serve, *request.extra_args), (own, *shared))
                argv = (*worker_serve, *added, *request.extra_args)
            env = self.rank_env(request, topology, rank)
            specs.append(head_first_rank(rank, argv, env, wait_port=master_port, api_port=port))
        return tuple(specs)


def _without_port(argv: tuple[str, ...]) -> tuple[str, ...]:
    """`argv` without its `--port P` / `--port=P` (workers serve no HTTP)."""
    index = find_flag(argv, PORT_FLAGS)
    if index is None:
        return argv
    width = 1 if "=" in argv[index] else 2
    return argv[:index] + argv[index + width :]
