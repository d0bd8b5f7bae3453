"""The runtime plugin contract.

A runtime turns a `ServeRequest` (the recipe's resolved values) and a `Topology` (which hosts, which ranks, the head's
address) into one `RankSpec` per rank: the container's main process (`argv`), its environment, the order in which the
ranks start and the port that proves a rank is up. It is pure: no I/O, no host access, deterministic, so `--dry-run`
shows exactly what `run` will do and a runtime is tested by comparing data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Topology:
    """Where the ranks run. `hosts[0]` is the head (rank 0)."""

    hosts: tuple[str, ...]
    # Per rank, the address the other ranks use to reach it; never a loopback address in multi-node jobs.
    addresses: tuple[str, ...]
    tensor_parallel: int = 1
    pipeline_parallel: int = 1

    def __post_init__(self) -> None:
        if not self.hosts:
            raise ValueError("a topology needs at least one host")
        if len(self.addresses) != len(self.hosts):
            raise ValueError("one address per host")

    @property
    def num_nodes(self) -> int:
        return len(self.hosts)

    @property
    def head_address(self) -> str:
        return self.addresses[0]

    @property
    def is_solo(self) -> bool:
        return len(self.hosts) == 1


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
class RankSpec:
    """One container: the engine process for one rank."""

    rank: int
    role: str  # "solo", "head" or "worker"
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    # Ranks start group by group (0 first); within a group, in parallel.
    start_group: int = 0
    # After this rank starts, this TCP port must be listening on its host before the next group starts.
    wait_port: int | None = None
    # The OpenAI-compatible API served by this rank; readiness probes run against it.
    api_port: int | None = None


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
        """Settings keys this runtime turns into engine flags when the recipe has no `command:`."""
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
