"""Properties every built-in runtime must have: real engine flags only, extra args on the engine ranks only, each
rank's own address in its env, a launch order the core can follow."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from runtime_cases import engine_flags, request, topology

from sparkrun.plugins import load_runtimes
from sparkrun.runtimes.base import RankSpec, Runtime, Topology
from sparkrun.runtimes.eugr import EugrVllmRuntime
from sparkrun.runtimes.flags import FlagMap, FlagSpec
from sparkrun.runtimes.llama_cpp import LLAMA_SERVER_FLAGS, LlamaCppRuntime
from sparkrun.runtimes.sglang import SGLANG_FLAGS, SglangRuntime
from sparkrun.runtimes.vllm import VLLM_FLAGS, VllmDistributedRuntime, VllmRayRuntime

RUNTIMES: dict[str, Runtime] = {
    "vllm-distributed": VllmDistributedRuntime(),
    "vllm-ray": VllmRayRuntime(),
    "sglang": SglangRuntime(),
    "llama-cpp": LlamaCppRuntime(),
    "eugr-vllm": EugrVllmRuntime(),
}
FLAG_MAPS: dict[str, FlagMap] = {
    "vllm-distributed": VLLM_FLAGS,
    "vllm-ray": VLLM_FLAGS,
    "sglang": SGLANG_FLAGS,
    "llama-cpp": LLAMA_SERVER_FLAGS,
    "eugr-vllm": VLLM_FLAGS,
}
MODELS = {"llama-cpp": "Qwen/Qwen3-1.7B-GGUF:Q8_0"}
TOPOLOGIES = (topology(1), topology(2), topology(4), topology(4, pp=2))
# The program each argv runs → the flag list it is checked against.
PROGRAMS = {"vllm": "vllm-serve", "sglang": "sglang-serve", "llama-server": "llama-server", "rpc-server": "rpc-server"}


def _settings(flag_map: FlagMap, switch_state: bool) -> dict[str, Any]:
    """Every key of the map set: switches to `switch_state`, values to a harmless word."""
    return {key: switch_state if spec.switch else _sample(spec) for key, spec in flag_map.items()}


def _sample(spec: FlagSpec) -> Any:
    return ["a", "b"] if spec.multi else "7"


def _engine_argv(argv: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """(program, arguments) of a rank's engine process, looking inside the Ray head wrapper."""
    if argv[:2] == ("bash", "-c"):
        argv = argv[argv.index("--") + 1 :]
    if argv[:2] == ("ray", "start"):
        return "ray-start", tuple(argv[2:])
    if argv[0] in ("vllm", "sglang"):
        return PROGRAMS[argv[0]], tuple(argv[2:])
    return PROGRAMS[argv[0]], tuple(argv[1:])


def _all_specs(name: str) -> Iterator[RankSpec]:
    for switch_state in (True, False):
        settings = _settings(FLAG_MAPS[name], switch_state)
        settings.update(port=8000, init_port=25000, ray_port=46379, rpc_port=50052, dashboard_port=8265)
        req = request(settings, model=MODELS.get(name, "Qwen/Qwen3-1.7B"))
        for topo in TOPOLOGIES:
            yield from RUNTIMES[name].build(req, topo)


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_every_flag_a_runtime_emits_is_a_real_engine_flag(name: str) -> None:
    unknown: set[str] = set()
    seen: set[str] = set()
    for spec in _all_specs(name):
        program, args = _engine_argv(spec.argv)
        flags = {token.split("=", 1)[0] for token in args if token.startswith("-")}
        seen |= flags
        unknown |= {f"{program}: {flag}" for flag in flags - engine_flags(program)}
    assert not unknown, f"flags not in tests/unit/runtimes/data: {sorted(unknown)}"
    assert len(seen) > 5  # the walk did reach the flag map


@pytest.mark.parametrize("name", sorted(FLAG_MAPS))
def test_every_flag_in_each_flag_map_is_real(name: str) -> None:
    program = {"sglang": "sglang-serve", "llama-cpp": "llama-server"}.get(name, "vllm-serve")
    names = {flag for spec in FLAG_MAPS[name].values() for flag in spec.names()}
    assert names - engine_flags(program) == set()


# Which ranks run the engine, so get `run RECIPE -- EXTRA_ARGS`.
ENGINE_RANKS = {
    "vllm-distributed": {0, 1, 2, 3},
    "vllm-ray": {0},
    "eugr-vllm": {0},
    "sglang": {0, 1, 2, 3},
    "llama-cpp": {0},
}


@pytest.mark.parametrize("name", sorted(RUNTIMES))
@pytest.mark.parametrize("nodes", [1, 2, 4])
def test_extra_args_end_the_serve_command_of_engine_ranks_only(name: str, nodes: int) -> None:
    extra = ("--enable-log-requests", "--seed", "3") if name != "llama-cpp" else ("--metrics", "--seed", "3")
    if name == "sglang":
        extra = ("--enable-metrics", "--random-seed", "3")
    req = request(model=MODELS.get(name, "Qwen/Qwen3-1.7B"), extra_args=extra)
    for spec in RUNTIMES[name].build(req, topology(nodes)):
        if spec.rank in ENGINE_RANKS[name]:
            assert spec.argv[-3:] == extra, spec
        else:
            assert not set(extra) & set(spec.argv), spec


@pytest.mark.parametrize("name", sorted(RUNTIMES))
@pytest.mark.parametrize("nodes", [1, 2, 4])
def test_each_rank_gets_its_own_address_and_the_job_variables(name: str, nodes: int) -> None:
    topo = topology(nodes)
    req = request(model=MODELS.get(name, "Qwen/Qwen3-1.7B"), env={"NODE_IP": "wrong", "FROM_RECIPE": "yes"})
    specs = RUNTIMES[name].build(req, topo)
    assert [spec.rank for spec in specs] == list(range(nodes))
    for spec in specs:
        own = topo.addresses[spec.rank]
        assert spec.env["NODE_IP"] == own
        assert spec.env.get("VLLM_HOST_IP", own) == own
        assert ("VLLM_HOST_IP" in spec.env) == (RUNTIMES[name].family == "vllm")
        assert spec.env["SPARKRUN_HEAD_IP"] == topo.addresses[0]
        assert spec.env["SPARKRUN_NODE_RANK"] == str(spec.rank)
        assert spec.env["SPARKRUN_NUM_NODES"] == str(nodes)
        assert spec.env["FROM_RECIPE"] == "yes"


def _check_launch_order(specs: Sequence[RankSpec], topo: Topology) -> None:
    groups = sorted({spec.start_group for spec in specs})
    assert groups == list(range(len(groups)))
    for spec in specs:
        if spec.start_group != groups[-1]:
            assert spec.wait_port is not None, f"rank {spec.rank} starts a later group but has no wait_port"
    api = [spec for spec in specs if spec.api_port is not None]
    assert len(api) == 1
    assert api[0].rank == 0
    if topo.is_solo:
        assert [spec.role for spec in specs] == ["solo"]
    else:
        assert [spec.role for spec in specs] == ["head"] + ["worker"] * (topo.num_nodes - 1)


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_launch_order_is_complete(name: str) -> None:
    req = request(model=MODELS.get(name, "Qwen/Qwen3-1.7B"))
    for topo in TOPOLOGIES:
        _check_launch_order(RUNTIMES[name].build(req, topo), topo)


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_solo_has_no_node_flags(name: str) -> None:
    (solo,) = RUNTIMES[name].build(request(model=MODELS.get(name, "Qwen/Qwen3-1.7B")), topology(1))
    node_flags = {"--nnodes", "--node-rank", "--master-addr", "--headless", "--dist-init-addr", "--rpc"}
    assert not node_flags & set(solo.argv)
    assert solo.argv[:2] != ("bash", "-c")


def test_builtins_are_discovered_through_entry_points() -> None:
    registry = load_runtimes()
    for name, runtime in RUNTIMES.items():
        loaded = registry.get(name)
        assert type(loaded) is type(runtime)
        assert loaded.name == name
        assert loaded.description
        assert loaded.default_image
