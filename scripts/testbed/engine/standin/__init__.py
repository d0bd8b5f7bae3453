"""Stand-in inference engines for sparkrun's test cluster (stdlib only, Python >= 3.11).

Executables with the real names and flags: ``vllm serve``, ``sglang serve`` / ``python3 -m sglang.launch_server``,
``llama-server``, ``rpc-server``, ``ray start|status|stop``, ``trtllm-serve``, ``trtllm-llmapi-launch``, ``mpirun``,
``max serve``, ``spark serve`` (Atlas) and ``tokenary``. They parse the real engines' flag lists (``flags/``,
leniently: a well-formed long flag missing from a list is accepted with a warning line, as another version may have it),
log engine-like lines to stdout, serve ``GET /health``, ``GET /v1/models`` and ``POST /v1/chat/completions``
(streamed as server-sent events or plain JSON), rendezvous over TCP in multi-node mode, and exit 0 on
SIGTERM/SIGINT. They load no model and need no GPU; ``scripts/testbed.sh`` bakes them into the image
``sparkrun-test/engine:latest``. Run one outside a container with ``python3 -m standin vllm serve ...``.

Knobs (environment variables), for fault tests:

``STANDIN_STARTUP_SECONDS`` (1.0)
    "model loading" time between start (or rendezvous) and ready.
``STANDIN_FAIL``
    ``startup``: crash half-way through start-up with an error line and exit code ``STANDIN_FAIL_EXIT`` (1).
    ``ready``: crash ``STANDIN_FAIL_AFTER`` seconds (default 1) after becoming ready.
``STANDIN_RENDEZVOUS_TIMEOUT`` (60)
    seconds a rank waits for its peers (head: all ranks joined; worker: head reachable), and how long ``mpirun``
    waits for all its ranks to report back. Also how long a
    ``ray start --address`` keeps trying and how long ``vllm serve --distributed-executor-backend ray`` waits
    for enough GPUs in the Ray cluster.
``STANDIN_PEER_TIMEOUT`` (10)
    after the rendezvous, a peer silent this long (no heartbeat) counts as lost, like a NCCL failure; a peer
    that closes its connection is lost at once. Any lost peer makes the others exit with status 1.
``STANDIN_RPC_CONNECT_TIMEOUT`` (5)
    seconds ``llama-server --rpc`` tries to reach each rpc-server (one attempt, like llama.cpp).
``STANDIN_EARLY_HTTP`` (vllm: ``hang``, sglang: ``refuse``, llama-server: ``503``)
    what the HTTP port does before the engine is ready: ``hang`` = listening but not answering (vLLM binds its
    socket before loading the model), ``refuse`` = not listening, ``503`` = answering 503 (llama.cpp).
``STANDIN_REQUIRE_GPU`` (0; the image sets 1)
    ``1``: fail like the real engine when no GPU is visible (``NVIDIA_VISIBLE_DEVICES`` unset or void, which is
    what a container of this image started without ``--gpus`` has), or when a rank needs more GPUs than visible.
    ``STANDIN_GPUS`` (1) is what ``NVIDIA_VISIBLE_DEVICES=all`` counts as (a DGX Spark has one GPU).
``STANDIN_CHECK_MODEL`` (0)
    ``1``: with ``HF_HUB_OFFLINE=1``, a Hugging Face model must be in the cache
    (``$HF_HUB_CACHE`` or ``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``: ``models--org--name/snapshots/*``),
    and local paths (``-m``, ``/models/...``) must exist; otherwise the engine fails like the real one.
``STANDIN_TOKEN_DELAY`` (0.01)
    seconds between streamed chunks.
"""

from __future__ import annotations

__all__ = ["ENGINES"]

ENGINES = (
    "vllm",
    "sglang",
    "llama-server",
    "rpc-server",
    "ray",
    "trtllm-serve",
    "trtllm-llmapi-launch",
    "mpirun",
    "max",
    "spark",
    "tokenary",
)
