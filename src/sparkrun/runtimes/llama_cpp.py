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
from sparkrun.runtimes.base import RankSpec, ServeRequest, Topology
from sparkrun.runtimes.engine import CommandShape, EngineRuntime
from sparkrun.runtimes.flags import FlagMap, render_flags, switch, value
from sparkrun.runtimes.ranks import NodeFlag, missing_node_flags, port_setting

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


class LlamaCppRuntime(EngineRuntime):
    name: ClassVar[str] = "llama-cpp"
    description: ClassVar[str] = "llama.cpp llama-server; multi-node through rpc-server workers (--rpc)"
    family: ClassVar[str] = "llama-cpp"
    default_image: ClassVar[str] = DEFAULT_IMAGE
    default_port: ClassVar[int] = DEFAULT_PORT
    flags: ClassVar[FlagMap] = LLAMA_SERVER_FLAGS
    launch_keys: ClassVar[frozenset[str]] = frozenset({"rpc_port"})
    engine_defaults: ClassVar[Mapping[str, Any]] = {"n_gpu_layers": 99}
    command_shape: ClassVar[CommandShape] = CommandShape(("llama",), "llama-server …", width=2)

    def validate(self, request: ServeRequest) -> list[str]:
        if request.command is not None:
            return super().validate(request)
        try:
            gguf_model_args(request.model)
        except RecipeError as exc:
            return [f"llama-cpp: {exc}"]
        return []

    def settings_command(self, request: ServeRequest, topology: Topology) -> tuple[str, ...]:
        return build_llama_server_command(request)

    def build(self, request: ServeRequest, topology: Topology) -> tuple[RankSpec, ...]:
        serve = self.serve_command(request, topology)
        present = (*serve, *request.extra_args)
        if topology.is_solo:
            return (self.solo_rank(request, topology, present),)
        api_port = self.api_port(request, present)
        rpc_port = port_setting(request, "rpc_port", DEFAULT_RPC_PORT)
        workers = range(1, topology.num_nodes)
        servers = ",".join(f"{topology.addresses[rank]}:{rpc_port}" for rank in workers)
        added = missing_node_flags(present, (NodeFlag(("--rpc",), "--rpc", servers),))
        head_argv = (*serve, *added, *request.extra_args)
        head = RankSpec(0, "head", head_argv, self.rank_env(request, topology, 0), start_group=1, api_port=api_port)
        return (head, *(self._rpc_worker(request, topology, rank, rpc_port) for rank in workers))

    def _rpc_worker(self, request: ServeRequest, topology: Topology, rank: int, rpc_port: int) -> RankSpec:
        bind = rpc_bind_address(topology.addresses[rank])
        argv = ("rpc-server", "--host", bind, "--port", str(rpc_port))
        env = self.rank_env(request, topology, rank)
        return RankSpec(rank=rank, role="worker", argv=argv, env=env, start_group=0, wait_port=rpc_port)
