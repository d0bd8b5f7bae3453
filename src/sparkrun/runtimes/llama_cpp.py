"""llama.cpp runtime: `llama-server`, multi-node through llama.cpp's RPC backend.

Solo: `llama-server -hf REPO:QUANT …` (or `-m /abs/path.gguf`). N nodes: ranks 1…N-1 run `rpc-server --host ADDR
--port 50052` and start first (group 0, each waited on its RPC port); then the head (rank 0, group 1) runs
`llama-server … --rpc w1:50052,w2:50052` and serves the API. Only the head runs the engine, so extra args go there.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from sparkrun.errors import RecipeError
from sparkrun.runtimes.base import RankSpec, Runtime, ServeRequest, Topology
from sparkrun.runtimes.flags import FlagMap, render_flags, switch, value
from sparkrun.runtimes.ranks import (
    NodeFlag,
    check_command_shape,
    missing_node_flags,
    port_in_argv,
    port_setting,
    rank_env,
)

DEFAULT_IMAGE: Final = "scitrera/dgx-spark-llama-cpp:latest"
DEFAULT_PORT: Final = 8080  # llama-server's own default, which the old tool used when a recipe set no port
DEFAULT_RPC_PORT: Final = 50052
_ON_OFF: Final = ("on", "off")

# Settings key → llama-server flag, in emit order; aliases after their canonical key (the first one set wins).
LLAMA_SERVER_FLAGS: Final[FlagMap] = {
    "host": value("--host"),
    "port": value("--port"),
    "served_model_name": value("--alias"),
    "max_model_len": value("--ctx-size"),
    "ctx_size": value("--ctx-size"),
    "n_gpu_layers": value("--n-gpu-layers"),
    "max_num_seqs": value("--parallel"),
    "parallel": value("--parallel"),
    "max_num_batched_tokens": value("--batch-size"),
    "batch_size": value("--batch-size"),
    "ubatch_size": value("--ubatch-size"),
    "threads": value("--threads"),
    "flash_attn": value("--flash-attn", bool_words=_ON_OFF),
    "split_mode": value("--split-mode"),
    "tensor_split": value("--tensor-split"),
    "cache_type_k": value("--cache-type-k"),
    "cache_type_v": value("--cache-type-v"),
    "kv_unified": switch("--kv-unified", off="--no-kv-unified"),
    "cont_batching": switch("--cont-batching", off="--no-cont-batching"),
    "jinja": switch("--jinja", off="--no-jinja"),
    "chat_template": value("--chat-template"),
    "chat_template_kwargs": value("--chat-template-kwargs"),
    "reasoning_format": value("--reasoning-format"),
    "reasoning_budget": value("--reasoning-budget"),
    "mmproj": value("--mmproj"),
    "draft_model": value("--model-draft"),
    "draft_max": value("--draft-max"),
    "metrics": switch("--metrics"),
    "webui": switch("--webui", off="--no-webui"),
}

_HF_REPO: Final = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(:[\w.-]+)?$")


def gguf_model_args(model: str) -> tuple[str, ...]:
    """`-hf REPO:QUANT` for a Hugging Face GGUF spec, `-m PATH` for an absolute `.gguf` path; anything else is a
    RecipeError (llama.cpp cannot load safetensors checkpoints)."""
    if model.startswith("/") and model.lower().endswith(".gguf"):
        return ("-m", model)
    if _HF_REPO.match(model) and (":" in model or "gguf" in model.lower()):
        return ("-hf", model)
    raise RecipeError(
        f"llama-cpp needs a GGUF model, got {model!r}",
        hint="use a Hugging Face GGUF spec `org/repo-GGUF:QUANT` (e.g. Qwen/Qwen3-1.7B-GGUF:Q8_0) "
        "or an absolute path to a .gguf file",
    )


def build_llama_server_command(request: ServeRequest) -> tuple[str, ...]:
    """`llama-server <model> …` from the settings, for recipes without `command:`."""
    return ("llama-server", *gguf_model_args(request.model), *render_flags(LLAMA_SERVER_FLAGS, request.settings))


def rpc_bind_address(address: str) -> str:
    """rpc-server has no authentication: bind it to the rank's own IP, not every interface, when we know it."""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return "0.0.0.0"
    return address


class LlamaCppRuntime(Runtime):
    name: ClassVar[str] = "llama-cpp"
    description: ClassVar[str] = "llama.cpp llama-server; multi-node through rpc-server workers (--rpc)"
    family: ClassVar[str] = "llama-cpp"
    default_image: ClassVar[str] = DEFAULT_IMAGE
    default_port: ClassVar[int] = DEFAULT_PORT

    def defaults(self) -> Mapping[str, Any]:
        return {"port": DEFAULT_PORT, "host": "0.0.0.0", "n_gpu_layers": 99}

    def mapped_keys(self) -> frozenset[str]:
        return frozenset(LLAMA_SERVER_FLAGS) | {"rpc_port"}

    def validate(self, request: ServeRequest) -> list[str]:
        if request.command is None:
            try:
                gguf_model_args(request.model)
            except RecipeError as exc:
                return [f"llama-cpp: {exc}"]
        elif not any("llama" in token for token in request.command[:2]):
            return [f"llama-cpp: command: does not look like `llama-server …` (starts with {request.command[0]!r})"]
        return []

    def serve_command(self, request: ServeRequest, topology: Topology) -> tuple[str, ...]:
        if request.command is None:
            return build_llama_server_command(request)
        check_command_shape(request.command, multi_node=not topology.is_solo)
        return tuple(request.command)

    def build(self, request: ServeRequest, topology: Topology) -> tuple[RankSpec, ...]:
        serve = self.serve_command(request, topology)
        present = (*serve, *request.extra_args)
        api_port = port_in_argv(present, ("--port",), port_setting(request, "port", DEFAULT_PORT), "--port")
        if topology.is_solo:
            argv = (*serve, *request.extra_args)
            return (RankSpec(rank=0, role="solo", argv=argv, env=rank_env(request, topology, 0), api_port=api_port),)
        rpc_port = port_setting(request, "rpc_port", DEFAULT_RPC_PORT)
        workers = range(1, topology.num_nodes)
        servers = ",".join(f"{topology.addresses[rank]}:{rpc_port}" for rank in workers)
        added = missing_node_flags(present, (NodeFlag(("--rpc",), "--rpc", servers),))
        head_argv = (*serve, *added, *request.extra_args)
        head = RankSpec(
            rank=0, role="head", argv=head_argv, env=rank_env(request, topology, 0), start_group=1, api_port=api_port
        )
        return (head, *(self._rpc_worker(request, topology, rank, rpc_port) for rank in workers))

    def _rpc_worker(self, request: ServeRequest, topology: Topology, rank: int, rpc_port: int) -> RankSpec:
        bind = rpc_bind_address(topology.addresses[rank])
        argv = ("rpc-server", "--host", bind, "--port", str(rpc_port))
        env = rank_env(request, topology, rank)
        return RankSpec(rank=rank, role="worker", argv=argv, env=env, start_group=0, wait_port=rpc_port)
