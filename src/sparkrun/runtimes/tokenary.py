"""tokenary runtime (`tokenary --model MODEL …`).

Solo: `tokenary --model MODEL … --server --port 8000 --tp-size 1`. N nodes: every rank runs `tokenary --model MODEL
… --rank r --world-size N --master-addr HEAD --master-port 25000 --tp-size N`; rank 0 also serves HTTP (`--server
--port P`), ranks > 0 are workers without HTTP. The head (group 0) is waited on the master port before the workers
(group 1) start. Every rank runs the engine, so extra args go to every rank.

The engine's flag list is UNVERIFIED (flags/tokenary.txt): only the flags the older sparkrun emitted are known.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from sparkrun.errors import RecipeError
from sparkrun.runtimes.base import RankSpec, Runtime, ServeRequest, Topology, is_shell_wrapper
from sparkrun.runtimes.flags import FlagMap, find_flag, render_flags, switch, value
from sparkrun.runtimes.ranks import (
    NodeFlag,
    check_command_shape,
    missing_node_flags,
    port_in_argv,
    port_setting,
    rank_env,
    to_bool,
)

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
_PORT: Final = ("--port",)
_SERVER: Final = ("--server",)


def build_tokenary_command(request: ServeRequest) -> tuple[str, ...]:
    return ("tokenary", "--model", request.model, *render_flags(TOKENARY_FLAGS, request.settings))


class TokenaryRuntime(Runtime):
    name: ClassVar[str] = "tokenary"
    description: ClassVar[str] = "tokenary; multi-node through --rank/--world-size/--master-addr, rank 0 serves HTTP"
    family: ClassVar[str] = "tokenary"
    default_image: ClassVar[str] = DEFAULT_IMAGE
    default_port: ClassVar[int] = DEFAULT_PORT

    def defaults(self) -> Mapping[str, Any]:
        return {"port": DEFAULT_PORT, "host": "0.0.0.0"}

    def mapped_keys(self) -> frozenset[str]:
        return frozenset(TOKENARY_FLAGS) | {"port", "init_port"}

    def validate(self, request: ServeRequest) -> list[str]:
        command = request.command
        head = command[4:6] if command is not None and is_shell_wrapper(command) else (command or ())[:2]
        if command is not None and not any("tokenary" in token for token in head):
            return [f"tokenary: command: does not look like `tokenary --model …` (starts with {command[0]!r})"]
        return []

    def serve_command(self, request: ServeRequest, topology: Topology) -> tuple[str, ...]:
        if request.command is None:
            return build_tokenary_command(request)
        check_command_shape(request.command, multi_node=not topology.is_solo)
        return tuple(request.command)

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
        port = port_in_argv(present, _PORT, port_setting(request, "port", DEFAULT_PORT), "--port")
        http = (NodeFlag(_SERVER, "--server", None), NodeFlag(_PORT, "--port", str(port)))
        tp = NodeFlag(("--tp-size",), "--tp-size", str(topology.tensor_parallel))
        if topology.is_solo:
            argv = (*serve, *missing_node_flags(present, (*http, tp)), *request.extra_args)
            return (RankSpec(0, "solo", argv, rank_env(request, topology, 0), api_port=port),)
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
                added = missing_node_flags(present, (own, *shared, *http))
                argv = (*serve, *added, *request.extra_args)
                env = rank_env(request, topology, 0)
                specs.append(RankSpec(0, "head", argv, env, wait_port=master_port, api_port=port))
            else:
                added = missing_node_flags((*worker_serve, *request.extra_args), (own, *shared))
                argv = (*worker_serve, *added, *request.extra_args)
                specs.append(RankSpec(rank, "worker", argv, rank_env(request, topology, rank), start_group=1))
        return tuple(specs)


def _without_port(argv: tuple[str, ...]) -> tuple[str, ...]:
    """`argv` without its `--port P` / `--port=P` (workers serve no HTTP)."""
    index = find_flag(argv, _PORT)
    if index is None:
        return argv
    width = 1 if "=" in argv[index] else 2
    return argv[:index] + argv[index + width :]
