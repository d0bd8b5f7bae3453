"""What the built-in runtimes share, written once: `EngineRuntime` (a `Runtime` driven by a flag map).

A built-in runtime declares its identity (`name`, `family`, `default_image`, `default_port`), its flag map, the
launch knobs it reads itself, the defaults it adds and how its engine looks in a recipe's `command:`; this class
turns those into `defaults`, `mapped_keys` and `validate`, and gives every runtime the same serve command (the
recipe's `command:` as given and checked, or one built from the settings), API port, per-rank env and solo rank.
Third-party runtimes implement `base.Runtime` directly; nothing here is part of the plugin contract.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from sparkrun.runtimes.base import RankSpec, Runtime, ServeRequest, Topology, is_shell_wrapper
from sparkrun.runtimes.flags import FlagMap
from sparkrun.runtimes.ranks import check_command_shape, port_in_argv, port_setting, rank_env

PORT_FLAGS: Final = ("--port",)


def engine_words(command: Sequence[str], width: int) -> tuple[str, ...]:
    """The first `width` words of the engine's own command line. Inside the recipe layer's shell wrapper
    (`base.is_shell_wrapper`) that is the engine argv after it, or, for a script it could not split, every word of
    the script."""
    if not is_shell_wrapper(command):
        return tuple(command[:width])
    if len(command) > 4:
        return tuple(command[4 : 4 + width])
    return tuple(command[2].split())


@dataclass(frozen=True)
class CommandShape:
    """How `validate` recognises a runtime's engine in a recipe's `command:`: one of `words` among its first
    `width` engine words (`engine_words`)."""

    words: tuple[str, ...]
    example: str  # the command's usual start, for the warning (`vllm serve …`)
    width: int = 2
    whole_name: bool = False  # a word must be the program's name (`max`, `/opt/bin/max`), not merely contain it

    def matches(self, command: Sequence[str]) -> bool:
        head = engine_words(command, self.width)
        if self.whole_name:
            return any(token.rsplit("/", 1)[-1] in self.words for token in head)
        return any(word in token for token in head for word in self.words)


def with_parallel_sizes(request: ServeRequest, topology: Topology) -> dict[str, Any]:
    """The settings with the parallel sizes of the hosts actually launched; pipeline parallel unset when it is 1."""
    values: dict[str, Any] = dict(request.settings)
    values["tensor_parallel"] = topology.tensor_parallel
    values["pipeline_parallel"] = topology.pipeline_parallel if topology.pipeline_parallel > 1 else None
    return values


def head_first_rank(
    rank: int, argv: tuple[str, ...], env: Mapping[str, str], *, wait_port: int, api_port: int
) -> RankSpec:
    """A rank of a launch where every rank runs the engine: the head (group 0) serves the API and is waited on
    `wait_port` (the engine's rendezvous port) before the workers (group 1) start together."""
    if rank == 0:
        return RankSpec(0, "head", argv, env, wait_port=wait_port, api_port=api_port)
    return RankSpec(rank, "worker", argv, env, start_group=1)


class EngineRuntime(Runtime):
    """A runtime whose serve command is built from a flag map when the recipe has no `command:`."""

    # Settings key -> engine flag (flags.render_flags), in emit order.
    flags: ClassVar[FlagMap]
    # Settings the runtime reads itself rather than through `flags` (e.g. `init_port`, `rpc_port`).
    launch_keys: ClassVar[frozenset[str]] = frozenset()
    # Added to (or replacing) the base defaults `port` and `host`.
    engine_defaults: ClassVar[Mapping[str, Any]] = {}
    command_shape: ClassVar[CommandShape]
    # Under every rank's env (recipe env and per-rank variables win); `address_vars` are set to the rank's address.
    base_env: ClassVar[Mapping[str, str]] = {}
    address_vars: ClassVar[tuple[str, ...]] = ("NODE_IP",)

    def defaults(self) -> Mapping[str, Any]:
        return {**super().defaults(), **self.engine_defaults}

    def mapped_keys(self) -> frozenset[str]:
        return frozenset(self.flags) | self.launch_keys

    def validate(self, request: ServeRequest) -> list[str]:
        command = request.command
        if command is None or self.command_shape.matches(command):
            return []
        first = command[0] if command else ""
        return [f"{self.name}: command: does not look like `{self.command_shape.example}` (starts with {first!r})"]

    @abstractmethod
    def settings_command(self, request: ServeRequest, topology: Topology) -> tuple[str, ...]:
        """The serve command built from the settings, for a recipe without `command:`."""

    def serve_command(self, request: ServeRequest, topology: Topology) -> tuple[str, ...]:
        """The recipe's `command:` as given (once it is known to be one engine command), or one from the settings."""
        if request.command is None:
            return self.settings_command(request, topology)
        check_command_shape(request.command, multi_node=not topology.is_solo)
        return tuple(request.command)

    def api_port(self, request: ServeRequest, argv: Sequence[str]) -> int:
        """The API's port: the `--port` that `argv` (template, extra args) pins, else the `port` setting."""
        return port_in_argv(argv, PORT_FLAGS, port_setting(request, "port", self.default_port), PORT_FLAGS[0])

    def rank_env(self, request: ServeRequest, topology: Topology, rank: int) -> dict[str, str]:
        return rank_env(request, topology, rank, base=self.base_env, address_vars=self.address_vars)

    def solo_rank(self, request: ServeRequest, topology: Topology, argv: tuple[str, ...]) -> RankSpec:
        """The one rank of a single-host launch: `argv` (the serve command, extra args included) serves the API."""
        return RankSpec(0, "solo", argv, self.rank_env(request, topology, 0), api_port=self.api_port(request, argv))
