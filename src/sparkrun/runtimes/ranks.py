"""Shared pieces of every runtime's rank plan: per-rank environment, launch settings, and the checks and additions a
recipe's `command:` needs before it can run on several nodes.

Every per-rank variable is set explicitly in `RankSpec.env` (never left for the container to expand: issue #132),
and `command:` is used as given: the runtime only appends the multi-node flags the template does not already carry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sparkrun.errors import RecipeError
from sparkrun.runtimes.base import ServeRequest, Topology, is_shell_wrapper
from sparkrun.runtimes.flags import find_flag, flag_value

# Words that make a `command:` a shell script rather than one program: docker would try to exec them.
_SHELL_WORDS = frozenset({"export", "cd", "source", ".", "set", "unset", "eval", "exec", "if", "for", "while", "{"})
_SHELL_OPERATORS = frozenset({";", "&&", "||", "|", "&"})
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SHELLS = frozenset({"bash", "sh", "/bin/bash", "/bin/sh", "/usr/bin/bash", "/usr/bin/env"})


def rank_env(
    request: ServeRequest,
    topology: Topology,
    rank: int,
    *,
    base: Mapping[str, str] | None = None,
    address_vars: Sequence[str] = ("NODE_IP",),
) -> dict[str, str]:
    """The container env of one rank: runtime `base` < recipe env < this rank's own variables.

    `address_vars` (e.g. NODE_IP, VLLM_HOST_IP) are set to the rank's own address; SPARKRUN_HEAD_IP,
    SPARKRUN_NODE_RANK and SPARKRUN_NUM_NODES describe the job. The rank's variables come last because no recipe
    value can be right for every rank at once.
    """
    env = dict(base or {})
    env.update(request.env)
    address = topology.addresses[rank]
    for var in address_vars:
        env[var] = address
    env["SPARKRUN_HEAD_IP"] = topology.head_address
    env["SPARKRUN_NODE_RANK"] = str(rank)
    env["SPARKRUN_NUM_NODES"] = str(topology.num_nodes)
    return env


def launch_setting(request: ServeRequest, key: str, default: Any) -> Any:
    """A launch knob (`init_port`, `ray_port`, `dashboard`, …): settings (CLI, `-o`, recipe defaults) first, then
    the recipe's `runtime_config`, then the runtime's default. None is unset at every layer."""
    found = request.setting(key)
    if found is None:
        found = request.runtime_config.get(key)
    return default if found is None else found


def port_setting(request: ServeRequest, key: str, default: int) -> int:
    return to_port(launch_setting(request, key, default), key)


def to_port(raw: Any, what: str) -> int:
    """A TCP port number from a setting or a command-line value, or a RecipeError naming it."""
    if isinstance(raw, bool):
        raise RecipeError(f"{what} must be a TCP port number, got {raw!r}")
    try:
        port = int(str(raw).strip())
    except ValueError:
        raise RecipeError(f"{what} must be a TCP port number, got {raw!r}") from None
    if not 1 <= port <= 65535:
        raise RecipeError(f"{what} must be a TCP port number (1-65535), got {port}")
    return port


def to_bool(raw: Any, what: str) -> bool:
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word in {"true", "yes", "on", "1"}:
        return True
    if word in {"false", "no", "off", "0"}:
        return False
    raise RecipeError(f"{what} must be true or false, got {raw!r}")


def check_command_shape(command: Sequence[str], *, multi_node: bool) -> None:
    """Reject a `command:` that is a shell script: it cannot be a container's main process as argv, and multi-node
    flags cannot be appended to it."""
    if not command:
        raise RecipeError("the recipe's command: is empty")
    if is_shell_wrapper(tuple(command)):
        return  # the recipe layer's wrapper for shell commands: appended flags reach the engine through "$@"
    first = command[0]
    scripted = first in _SHELL_WORDS or bool(_ASSIGNMENT.match(first))
    scripted = scripted or any(token in _SHELL_OPERATORS or token.endswith(";") for token in command)
    if scripted:
        raise RecipeError(
            f"the recipe's command: is a shell script (it starts with {first!r}), not one engine command",
            hint="move variables to `env:` (sparkrun sets NODE_IP/VLLM_HOST_IP per rank itself) and make `command:` "
            "a single command such as `vllm serve {model} …`",
        )
    if multi_node and first in _SHELLS:
        raise RecipeError(
            f"the recipe's command: runs through {first!r}; sparkrun cannot add the multi-node flags to it",
            hint="make `command:` the engine command itself (e.g. `vllm serve {model} …`)",
        )


@dataclass(frozen=True)
class NodeFlag:
    """A flag multi-node launches need. `aliases` are the spellings that count as already present."""

    aliases: tuple[str, ...]
    flag: str
    value: str | None  # None: a switch
    per_rank: bool = False  # differs between ranks, so a template cannot carry it for every rank

    def render(self) -> tuple[str, ...]:
        return (self.flag,) if self.value is None else (self.flag, self.value)


def missing_node_flags(present: Sequence[str], flags: Sequence[NodeFlag]) -> tuple[str, ...]:
    """The arguments of `flags` that `present` (the template plus extra args) does not carry yet.

    A per-rank flag in the template is an error (one value cannot be right for every rank); a shared flag the
    template sets to a different number than the topology needs (e.g. `--nnodes 4` on two nodes) is an error too.
    """
    added: list[str] = []
    for node_flag in flags:
        index = find_flag(present, node_flag.aliases)
        if index is None:
            added.extend(node_flag.render())
            continue
        if node_flag.per_rank:
            raise RecipeError(
                f"the recipe's command: sets {present[index]}, which sparkrun sets per rank on multi-node launches",
                hint=f"remove {node_flag.flag} from `command:`",
            )
        given = flag_value(present, node_flag.aliases)
        if node_flag.value is not None and node_flag.value.isdigit() and given is not None and given != node_flag.value:
            raise RecipeError(
                f"the recipe's command: sets {node_flag.flag} {given}, but this launch needs {node_flag.value}",
                hint=f"use a placeholder in `command:` or remove {node_flag.flag}",
            )
    return tuple(added)


def parallel_node_flags(
    topology: Topology, tp: tuple[str, ...], pp: tuple[str, ...] | None = None
) -> tuple[NodeFlag, ...]:
    """Tensor (and pipeline) parallel sizes of a multi-node launch: `tp` and `pp` are the engine's spellings, the
    first of each being the one emitted. A template with a different size for either is an error."""
    flags = [NodeFlag(tp, tp[0], str(topology.tensor_parallel))]
    if pp is not None and topology.pipeline_parallel > 1:
        flags.append(NodeFlag(pp, pp[0], str(topology.pipeline_parallel)))
    return tuple(flags)


def port_in_argv(argv: Sequence[str], names: Sequence[str], default: int, what: str) -> int:
    """The port a flag in `argv` sets (the template or extra args may pin it), or `default`."""
    given = flag_value(argv, names)
    return default if given is None else to_port(given, what)
