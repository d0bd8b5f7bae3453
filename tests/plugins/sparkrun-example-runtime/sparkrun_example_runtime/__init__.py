"""An example sparkrun runtime plugin: `vllm serve` on one host.

It shows the whole contract a plugin implements: a `Runtime` subclass whose `name` matches its entry point, and a
pure `build` that turns the request and topology into one `RankSpec` per host. The core runs the specs (one
container per rank, `argv` as its main process), waits for `api_port` and follows the logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from sparkrun.errors import RecipeError
from sparkrun.runtimes import RankSpec, Runtime, ServeRequest, Topology

# Settings key → `vllm serve` flag, used when the recipe has no `command:`.
FLAGS: Mapping[str, str] = {
    "served_model_name": "--served-model-name",
    "max_model_len": "--max-model-len",
    "gpu_memory_utilization": "--gpu-memory-utilization",
}


class ExampleVllmRuntime(Runtime):
    name: ClassVar[str] = "example-vllm"
    description: ClassVar[str] = "Example plugin: vLLM on a single host"
    family: ClassVar[str] = "vllm"
    default_image: ClassVar[str] = "scitrera/dgx-spark-vllm:latest"
    default_port: ClassVar[int] = 8000

    def mapped_keys(self) -> frozenset[str]:
        return frozenset(FLAGS) | {"host", "port"}

    def build(self, request: ServeRequest, topology: Topology) -> tuple[RankSpec, ...]:
        if not topology.is_solo:
            raise RecipeError(
                f"runtime {self.name} runs on one host, but this launch has {topology.num_nodes}",
                hint="use --tp 1, or a multi-node runtime such as vllm-distributed",
            )
        port = int(request.setting("port", self.default_port))
        if request.command is not None:
            argv = tuple(request.command)
        else:
            argv = ("vllm", "serve", request.model, "--host", str(request.setting("host", "0.0.0.0")))
            argv += ("--port", str(port))
            for key, flag in FLAGS.items():
                value: Any = request.setting(key)
                if value is not None:
                    argv += (flag, str(value))
        address = topology.addresses[0]
        env = {
            **request.env,
            "NODE_IP": address,
            "VLLM_HOST_IP": address,
            "SPARKRUN_HEAD_IP": address,
            "SPARKRUN_NODE_RANK": "0",
            "SPARKRUN_NUM_NODES": "1",
        }
        return (RankSpec(rank=0, role="solo", argv=(*argv, *request.extra_args), env=env, api_port=port),)
