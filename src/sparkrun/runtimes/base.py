"""The runtime plugin contract.

A runtime turns a `ServeRequest` (the recipe's resolved values) and a `Topology` (which hosts, which ranks, the head's
address) into one `RankSpec` per rank: the container's main process (`argv`), its environment, the order in which the
ranks start and the port that proves a rank is up. It is pure: no I/O, no host access, deterministic, so `--dry-run`
shows exactly what `run` will do and a runtime is tested by comparing data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Topology:
    """Where the ranks run. `hosts[0]` is the head (rank 0)."""

    hosts: tuple[str, ...]
    # Per rank, the address the other ranks use to reach it; never a loopback address in multi-node jobs. Give IP
    # literals: Ray's --node-ip-address needs one, and llama.cpp's rpc-server binds to its rank's address when it is
    # an IP (it has no authentication, so it is not exposed on every interface).
    addresses: tuple[str, ...]
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    # Per rank, the name of its container (rank 0 `…_solo` or `…_head`, ranks > 0 `…_worker<rank>`), for runtimes
    # whose ranks reach into each other's containers (trtllm: mpirun on the head `docker exec`s into the workers).
    # Empty when the core does not know them yet (e.g. a plan made before the job id).
    container_names: tuple[str, ...] = ()
    # How the hosts reach each other over SSH: the user and port sparkrun itself logs in with (None: ssh's default).
    # Host-to-host SSH uses the keys and known_hosts in that user's ~/.ssh on each host.
    ssh_user: str | None = None
    ssh_port: int | None = None

    def __post_init__(self) -> None:
        if not self.hosts:
            raise ValueError("a topology needs at least one host")
        if len(self.addresses) != len(self.hosts):
            raise ValueError("one address per host")
        if self.container_names and len(self.container_names) != len(self.hosts):
            raise ValueError("one container name per host")

    @property
    def num_nodes(self) -> int:
        return len(self.hosts)

    @property
    def head_address(self) -> str:
        return self.addresses[0]

    @property
    def is_solo(self) -> bool:
        return len(self.hosts) == 1


# A recipe `command:` that needs a shell (`export A=1; exec vllm serve …`) reaches runtimes as
# `("bash", "-c", '<script ending in "$@">', SHELL_WRAPPER_ARGV0, *engine_argv)`: arguments a runtime appends
# (node rank, extra args) still land on the engine's command line through "$@".
SHELL_WRAPPER_ARGV0 = "sparkrun-serve"


def is_shell_wrapper(argv: Sequence[str]) -> bool:
    return len(argv) >= 4 and tuple(argv[:2]) == ("bash", "-c") and argv[3] == SHELL_WRAPPER_ARGV0 and '"$@"' in argv[2]


@dataclass(frozen=True)
class ServeRequest:
    """What the recipe asks for, after the value chain and templating have been applied."""

    model: str
    image: str
    # Resolved value chain, highest first: CLI flags and -o > matched overrides > recipe defaults > runtime defaults.
    settings: Mapping[str, Any]
    # The recipe's `command:` rendered and split into argv, or None when the runtime should build the command.
    command: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    runtime_config: Mapping[str, Any] = field(default_factory=dict)
    # `sparkrun run RECIPE -- EXTRA_ARGS`: appended to the serve command of the rank(s) that run the engine.
    extra_args: tuple[str, ...] = ()

    def setting(self, key: str, default: Any = None) -> Any:
        value = self.settings.get(key)
        return default if value is None else value


@dataclass(frozen=True)
class Mount:
    """A host path bind-mounted into a rank's container. `source` may start with `~/`: the home of the SSH user on
    that host (the core fills it in from the probe)."""

    source: str
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class RankSpec:
    """One container: the engine process for one rank."""

    rank: int
    role: str  # "solo", "head" or "worker"
    # The container's main process (`docker run … IMAGE ARGV…`), never wrapped in `sleep infinity` + `docker exec`.
    # Run it as given: with an image ENTRYPOINT, pass `--entrypoint ARGV[0]` and ARGV[1:] as the command.
    argv: tuple[str, ...]
    # Every per-rank variable is explicit here (NODE_IP, SPARKRUN_NODE_RANK, …) plus the recipe env; nothing relies
    # on the container expanding a variable. Detected network env goes under it (`runtimes.network`).
    env: Mapping[str, str] = field(default_factory=dict)
    # Ranks start group by group (0 first); within a group, in parallel.
    start_group: int = 0
    # After this rank starts, this TCP port must be listening on its host before the next group starts. Check it at
    # the rank's address (`Topology.addresses[rank]`), not 127.0.0.1: a listener may be bound to that address only.
    wait_port: int | None = None
    # The OpenAI-compatible API served by this rank; readiness probes run against it.
    api_port: int | None = None
    # Host paths mounted into this rank's container (besides the Hugging Face cache, which the core always mounts).
    mounts: tuple[Mount, ...] = ()


class Runtime(ABC):
    """Subclass this and declare it in the `sparkrun.runtimes` entry-point group under `name`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    # The engine family for `overrides: when: runtime_family:` (e.g. "vllm" for vllm-ray and vllm-distributed).
    family: ClassVar[str] = ""
    default_image: ClassVar[str] = ""
    default_port: ClassVar[int] = 8000

    def defaults(self) -> Mapping[str, Any]:
        """The lowest layer of the value chain."""
        return {"port": self.default_port, "host": "0.0.0.0"}

    def mapped_keys(self) -> frozenset[str]:
        """Settings keys this runtime uses: those it turns into engine flags when the recipe has no `command:`, and
        the launch knobs it reads itself (e.g. `init_port`, `ray_port`). The recipe validator warns about `defaults`
        keys outside this set that the `command:` template does not use either."""
        return frozenset()

    @abstractmethod
    def build(self, request: ServeRequest, topology: Topology) -> tuple[RankSpec, ...]:
        """One RankSpec per host in `topology`, rank order. Raise `sparkrun.errors.RecipeError` for bad input."""

    def fallback_image(self, image: str) -> str | None:
        """An image to run instead when `image` is not present on the head host (e.g. a local build tag that has a
        published twin). The orchestration layer decides, from probed facts, whether to use it."""
        return None

    def validate(self, request: ServeRequest) -> list[str]:
        """Problems a runtime can see in a request before anything runs (warnings, one line each)."""
        return []
