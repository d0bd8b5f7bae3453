"""TensorRT-LLM runtime: `trtllm-serve MODEL …`; multi-node through Open MPI.

Solo: one container running `trtllm-serve MODEL --backend pytorch --host … --port 8000 --tp_size 1 …`.

N nodes: Open MPI's `mpirun` runs in the head container (rank 0, group 1) and starts one rank per host: `mpirun
--allow-run-as-root --mca plm_rsh_agent AGENT --mca rmaps_ppr_n_pernode 1 -H a0,a1,… -np N trtllm-llmapi-launch
trtllm-serve MODEL … --tp_size N`. It reaches the worker containers (ranks > 0, group 0, started first) through an
rsh agent that runs `ssh WORKER_HOST docker exec -i CONTAINER …` over the HOSTS' SSH: the head container mounts the
SSH user's `~/.ssh` of the head host read-only (keys, known_hosts; host-key checking stays on), and no container
runs sshd. A worker's main process is a holder (`mpi_worker.sh`) until mpirun starts its rank. The container names
come from `Topology.container_names`, the SSH user and port from `Topology.ssh_user/ssh_port`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from sparkrun.errors import RecipeError
from sparkrun.runtimes.base import Mount, RankSpec, ServeRequest, Topology
from sparkrun.runtimes.container_scripts import container_script, wrap_command
from sparkrun.runtimes.engine import CommandShape, EngineRuntime, with_parallel_sizes
from sparkrun.runtimes.flags import FlagMap, render_flags, switch, value
from sparkrun.runtimes.ranks import missing_node_flags, parallel_node_flags, rank_env

DEFAULT_IMAGE: Final = "nvcr.io/nvidia/tensorrt-llm/release:latest"
DEFAULT_PORT: Final = 8000
MPI_HEAD: Final = "mpi_head.sh"
MPI_WORKER: Final = "mpi_worker.sh"
AGENT_DIR: Final = "/tmp/sparkrun-mpi"
SSH_DIR: Final = "/run/sparkrun/ssh"  # the SSH user's ~/.ssh of the head host, read-only
LAUNCHER: Final = "trtllm-llmapi-launch"
# Open MPI refuses to run as root (the containers' user) without these; the older sparkrun set them too.
MPI_ENV: Final[Mapping[str, str]] = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}

# Settings key → trtllm-serve flag, in emit order (checked against the real list, flags/trtllm-serve.txt). Click
# options: trtllm-serve spells most of them with underscores.
TRTLLM_FLAGS: Final[FlagMap] = {
    "backend": value("--backend"),
    "host": value("--host"),
    "port": value("--port"),
    "served_model_name": value("--served_model_name"),
    "tokenizer": value("--tokenizer"),
    "model_revision": value("--revision"),
    "tensor_parallel": value("--tp_size"),
    "pipeline_parallel": value("--pp_size"),
    "expert_parallel": value("--ep_size"),
    "max_batch_size": value("--max_batch_size"),
    "max_num_seqs": value("--max_batch_size"),
    "max_num_tokens": value("--max_num_tokens"),
    "max_num_batched_tokens": value("--max_num_tokens"),
    "max_seq_len": value("--max_seq_len"),
    "max_model_len": value("--max_seq_len"),
    "max_beam_width": value("--max_beam_width"),
    "kv_cache_dtype": value("--kv_cache_dtype"),
    "kv_cache_free_gpu_memory_fraction": value("--kv_cache_free_gpu_memory_fraction"),
    "free_gpu_memory_fraction": value("--kv_cache_free_gpu_memory_fraction"),
    "trust_remote_code": switch("--trust_remote_code"),
    "enable_chunked_prefill": switch("--enable_chunked_prefill"),
    "enable_attention_dp": switch("--enable_attention_dp"),
    "extra_llm_api_options": value("--extra_llm_api_options"),
    "config": value("--extra_llm_api_options"),
    "tool_call_parser": value("--tool_parser"),
    "tool_parser": value("--tool_parser"),
    "reasoning_parser": value("--reasoning_parser"),
    "chat_template": value("--chat_template"),
    "log_level": value("--log_level"),
}

_TP: Final = ("--tp_size", "--tensor_parallel_size")
_PP: Final = ("--pp_size", "--pipeline_parallel_size")


def build_trtllm_command(request: ServeRequest, topology: Topology) -> tuple[str, ...]:
    """`trtllm-serve MODEL …` from the settings; the parallel sizes come from the topology."""
    return ("trtllm-serve", request.model, *render_flags(TRTLLM_FLAGS, with_parallel_sizes(request, topology)))


def mpirun_argv(topology: Topology, program: tuple[str, ...]) -> tuple[str, ...]:
    """`mpirun …` that starts `program` once per host, rank r on `topology.addresses[r]`."""
    return (
        "mpirun",
        "--allow-run-as-root",
        "--mca",
        "plm_rsh_agent",
        f"{AGENT_DIR}/rsh-agent",
        "--mca",
        "rmaps_ppr_n_pernode",
        "1",
        "-H",
        ",".join(topology.addresses),
        "-np",
        str(topology.num_nodes),
        *program,
    )


class TrtllmRuntime(EngineRuntime):
    name: ClassVar[str] = "trtllm"
    description: ClassVar[str] = "TensorRT-LLM trtllm-serve; multi-node through Open MPI (mpirun, docker exec over SSH)"
    family: ClassVar[str] = "trtllm"
    default_image: ClassVar[str] = DEFAULT_IMAGE
    default_port: ClassVar[int] = DEFAULT_PORT
    flags: ClassVar[FlagMap] = TRTLLM_FLAGS
    # The PyTorch backend loads a Hugging Face checkpoint directly (older releases defaulted to building an engine).
    engine_defaults: ClassVar[Mapping[str, Any]] = {"backend": "pytorch"}
    command_shape: ClassVar[CommandShape] = CommandShape(("trtllm",), "trtllm-serve MODEL …", width=3)

    def settings_command(self, request: ServeRequest, topology: Topology) -> tuple[str, ...]:
        return build_trtllm_command(request, topology)

    def serve_command(self, request: ServeRequest, topology: Topology) -> tuple[str, ...]:
        """The serve command with the parallel sizes the topology needs, extra args last."""
        serve = super().serve_command(request, topology)
        if request.command is None:
            return (*serve, *request.extra_args)
        if serve[0] == "mpirun":
            raise RecipeError(
                "the recipe's command: starts with mpirun; sparkrun runs mpirun itself on multi-node launches",
                hint="make `command:` the serve command (`trtllm-serve {model} …`)",
            )
        present = (*serve, *request.extra_args)
        added = missing_node_flags(present, parallel_node_flags(topology, _TP, _PP))
        return (*serve, *added, *request.extra_args)

    def build(self, request: ServeRequest, topology: Topology) -> tuple[RankSpec, ...]:
        serve = self.serve_command(request, topology)
        api_port = self.api_port(request, serve)
        if topology.is_solo:
            return (self.solo_rank(request, topology, serve),)
        if len(topology.container_names) != topology.num_nodes:
            raise RecipeError("trtllm needs the container names of every rank to plan a multi-node launch")
        program = serve if LAUNCHER in serve[:1] else (LAUNCHER, *serve)
        head_args = [AGENT_DIR, SSH_DIR, topology.ssh_user or "", str(topology.ssh_port or "")]
        for rank in range(1, topology.num_nodes):
            head_args += [topology.addresses[rank], topology.container_names[rank]]
        head = RankSpec(
            0,
            "head",
            wrap_command(MPI_HEAD, "sparkrun-mpi-head", head_args, mpirun_argv(topology, program)),
            rank_env(request, topology, 0, base=MPI_ENV),
            start_group=1,
            api_port=api_port,
            mounts=(Mount("~/.ssh", SSH_DIR),),
        )
        return (head, *(self._worker(request, topology, rank) for rank in range(1, topology.num_nodes)))

    def _worker(self, request: ServeRequest, topology: Topology, rank: int) -> RankSpec:
        argv = ("bash", "-c", container_script(MPI_WORKER), "sparkrun-mpi-worker", topology.head_address, str(rank))
        return RankSpec(rank, "worker", argv, rank_env(request, topology, rank, base=MPI_ENV), start_group=0)
