"""Properties every built-in runtime must have: real engine flags only, extra args on the engine ranks only, each
rank's own address in its env, a launch order the core can follow, pure and deterministic plans."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from types import MappingProxyType
from typing import Any

import pytest
from runtime_cases import engine_flags, request, topology

from sparkrun.plugins import load_runtimes
from sparkrun.runtimes.atlas import ATLAS_FLAGS, AtlasRuntime
from sparkrun.runtimes.base import RankSpec, Runtime, Topology
from sparkrun.runtimes.eugr import EugrVllmRuntime
from sparkrun.runtimes.flags import FlagMap, FlagSpec
from sparkrun.runtimes.llama_cpp import LLAMA_SERVER_FLAGS, LlamaCppRuntime
from sparkrun.runtimes.modular_max import MAX_FLAGS, ModularMaxRuntime
from sparkrun.runtimes.sglang import SGLANG_FLAGS, SglangRuntime
from sparkrun.runtimes.tokenary import TOKENARY_FLAGS, TokenaryRuntime
from sparkrun.runtimes.trtllm import TRTLLM_FLAGS, TrtllmRuntime
from sparkrun.runtimes.vllm import VLLM_FLAGS, VllmDistributedRuntime, VllmRayRuntime

RUNTIMES: dict[str, Runtime] = {
    "vllm-distributed": VllmDistributedRuntime(),
    "vllm-ray": VllmRayRuntime(),
    "sglang": SglangRuntime(),
    "llama-cpp": LlamaCppRuntime(),
    "eugr-vllm": EugrVllmRuntime(),
    "trtllm": TrtllmRuntime(),
    "modular-max": ModularMaxRuntime(),
    "atlas": AtlasRuntime(),
    "tokenary": TokenaryRuntime(),
}
FLAG_MAPS: dict[str, FlagMap] = {
    "vllm-distributed": VLLM_FLAGS,
    "vllm-ray": VLLM_FLAGS,
    "sglang": SGLANG_FLAGS,
    "llama-cpp": LLAMA_SERVER_FLAGS,
    "eugr-vllm": VLLM_FLAGS,
    "trtllm": TRTLLM_FLAGS,
    "modular-max": MAX_FLAGS,
    "atlas": ATLAS_FLAGS,
    "tokenary": TOKENARY_FLAGS,
}
# The engine's flag list (data/<name>.txt) each runtime's flag map is checked against.
FLAG_LISTS = {
    "sglang": "sglang-serve",
    "llama-cpp": "llama-server",
    "trtllm": "trtllm-serve",
    "modular-max": "max-serve",
    "atlas": "atlas",
    "tokenary": "tokenary",
}
MODELS = {"llama-cpp": "Qwen/Qwen3-1.7B-GGUF:Q8_0"}
ALL_TOPOLOGIES = (topology(1), topology(2), topology(4), topology(4, pp=2))
# What each runtime can plan; the others it refuses with a RecipeError (test_unsupported_plans_are_refused).
TOPOLOGIES: dict[str, tuple[Topology, ...]] = {
    "modular-max": (topology(1),),
    "atlas": ALL_TOPOLOGIES[:3],
    "tokenary": ALL_TOPOLOGIES[:3],
}
# The program each argv runs → the flag list it is checked against; `skip` words before the arguments.
PROGRAMS: dict[str, tuple[str, int]] = {
    "vllm": ("vllm-serve", 2),
    "sglang": ("sglang-serve", 2),
    "llama-server": ("llama-server", 1),
    "rpc-server": ("rpc-server", 1),
    "trtllm-serve": ("trtllm-serve", 1),
    "max": ("max-serve", 2),
    "spark": ("atlas", 2),
    "tokenary": ("tokenary", 1),
}
HOLDERS = {"sparkrun-mpi-worker"}  # in-container scripts that hold a container without running an engine


def topologies(name: str) -> tuple[Topology, ...]:
    return TOPOLOGIES.get(name, ALL_TOPOLOGIES)


def _settings(flag_map: FlagMap, switch_state: bool) -> dict[str, Any]:
    """Every key of the map set: switches to `switch_state`, values to a harmless word."""
    return {key: switch_state if spec.switch else _sample(spec) for key, spec in flag_map.items()}


def _sample(spec: FlagSpec) -> Any:
    return ["a", "b"] if spec.multi else "7"


def _mpirun(argv: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(mpirun's own arguments, the program it runs) for the mpirun argv sparkrun emits."""
    index, value_flags = 1, {"--mca": 2, "-H": 1, "-np": 1, "-x": 1}
    while index < len(argv) and argv[index].startswith("-"):
        index += 1 + value_flags.get(argv[index], 0)
    return tuple(argv[1:index]), tuple(argv[index:])


def _engine_argvs(argv: Sequence[str]) -> list[tuple[str, tuple[str, ...]]]:
    """(flag list, arguments) of each program a rank's main process runs, looking inside in-container wrappers."""
    if argv[:2] == ("bash", "-c"):
        if argv[3] in HOLDERS:
            return []
        argv = argv[argv.index("--") + 1 :]
    if argv[:2] == ("ray", "start"):
        return [("ray-start", tuple(argv[2:]))]
    if argv[0] == "mpirun":
        own, program = _mpirun(argv)
        if program[0] == "trtllm-llmapi-launch":
            program = program[1:]
        return [("mpirun", own), *_engine_argvs(program)]
    flag_list, skip = PROGRAMS[argv[0]]
    return [(flag_list, tuple(argv[skip:]))]


def _all_specs(name: str) -> Iterator[RankSpec]:
    for switch_state in (True, False):
        settings = _settings(FLAG_MAPS[name], switch_state)
        settings.update(port=8000, init_port=25000, ray_port=46379, rpc_port=50052, dashboard_port=8265)
        for single in ("encode_only", "ner"):  # tokenary runs these modes on one GPU only
            settings.pop(single, None)
        req = request(settings, model=MODELS.get(name, "Qwen/Qwen3-1.7B"))
        for topo in topologies(name):
            yield from RUNTIMES[name].build(req, topo)


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_every_flag_a_runtime_emits_is_a_real_engine_flag(name: str) -> None:
    unknown: set[str] = set()
    seen: set[str] = set()
    for spec in _all_specs(name):
        for program, args in _engine_argvs(spec.argv):
            flags = {token.split("=", 1)[0] for token in args if token.startswith("-")}
            seen |= flags
            unknown |= {f"{program}: {flag}" for flag in flags - engine_flags(program)}
    assert not unknown, f"flags not in tests/unit/runtimes/data: {sorted(unknown)}"
    assert len(seen) > 5  # the walk did reach the flag map


@pytest.mark.parametrize("name", sorted(FLAG_MAPS))
def test_every_flag_in_each_flag_map_is_real(name: str) -> None:
    names = {flag for spec in FLAG_MAPS[name].values() for flag in spec.names()}
    assert names - engine_flags(FLAG_LISTS.get(name, "vllm-serve")) == set()


# Which ranks run the engine, so get `run RECIPE -- EXTRA_ARGS` (trtllm: mpirun on the head starts every rank).
ENGINE_RANKS = {
    "vllm-distributed": {0, 1, 2, 3},
    "vllm-ray": {0},
    "eugr-vllm": {0},
    "sglang": {0, 1, 2, 3},
    "llama-cpp": {0},
    "trtllm": {0},
    "modular-max": {0},
    "atlas": {0, 1, 2, 3},
    "tokenary": {0, 1, 2, 3},
}
# Three real arguments of each engine, passed as `-- EXTRA_ARGS`.
EXTRA_ARGS = {
    "llama-cpp": ("--metrics", "--seed", "3"),
    "sglang": ("--enable-metrics", "--random-seed", "3"),
    "trtllm": ("--log_level", "info", "--enable_chunked_prefill"),
    "modular-max": ("--max-queue-size", "4", "--enable-echo"),
    "atlas": ("--profile", "--oom-guard-mb", "512"),
    "tokenary": ("--disable-reasoning", "--max-tokens", "64"),
}


@pytest.mark.parametrize("name", sorted(RUNTIMES))
@pytest.mark.parametrize("nodes", [1, 2, 4])
def test_extra_args_end_the_serve_command_of_engine_ranks_only(name: str, nodes: int) -> None:
    extra = EXTRA_ARGS.get(name, ("--enable-log-requests", "--seed", "3"))
    topo = topology(nodes)
    if topo not in topologies(name):
        pytest.skip(f"{name} runs on one host only")
    req = request(model=MODELS.get(name, "Qwen/Qwen3-1.7B"), extra_args=extra)
    for spec in RUNTIMES[name].build(req, topo):
        if spec.rank in ENGINE_RANKS[name]:
            assert spec.argv[-3:] == extra, spec
            program, _ = _engine_argvs(spec.argv)[-1]
            assert {a for a in extra if a.startswith("-")} <= engine_flags(program)  # the test uses real flags
        else:
            assert not set(extra) & set(spec.argv), spec


@pytest.mark.parametrize("name", sorted(RUNTIMES))
@pytest.mark.parametrize("nodes", [1, 2, 4])
def test_each_rank_gets_its_own_address_and_the_job_variables(name: str, nodes: int) -> None:
    topo = topology(nodes)
    if topo not in topologies(name):
        pytest.skip(f"{name} runs on one host only")
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


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_nothing_is_left_for_the_container_to_expand(name: str) -> None:
    """Per-rank values are explicit: no `$VAR` in env values or in arguments (scripts given to `bash -c` aside)."""
    for spec in _all_specs(name):
        args = spec.argv[3:] if spec.argv[:2] == ("bash", "-c") else spec.argv
        assert not [a for a in args if "$" in a], spec.argv
        assert not [v for v in spec.env.values() if "$" in v], spec.env


def _is_holder(spec: RankSpec) -> bool:
    return spec.argv[:2] == ("bash", "-c") and spec.argv[3] in HOLDERS


def _check_launch_order(specs: Sequence[RankSpec], topo: Topology) -> None:
    groups = sorted({spec.start_group for spec in specs})
    assert groups == list(range(len(groups)))
    for spec in specs:
        if spec.start_group != groups[-1] and not _is_holder(spec):
            # A holder only has to be running when the next group starts (the launch checks that); any other rank
            # of an earlier group must be listening.
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
    for topo in topologies(name):
        _check_launch_order(RUNTIMES[name].build(req, topo), topo)


@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_unsupported_plans_are_refused(name: str) -> None:
    from sparkrun.errors import RecipeError

    for topo in set(ALL_TOPOLOGIES) - set(topologies(name)):
        with pytest.raises(RecipeError):
            RUNTIMES[name].build(request(), topo)


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_plans_are_pure_and_deterministic(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same request gives the same plan twice, the request is not changed, and no socket is opened."""

    def no_network(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a runtime opened a socket")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    settings = MappingProxyType(dict(request().settings))
    for topo in topologies(name):
        req = request(settings, model=MODELS.get(name, "Qwen/Qwen3-1.7B"), env={"A": "1"}, extra_args=("--x",))
        first = RUNTIMES[name].build(req, topo)
        again = RUNTIMES[name].build(req, topo)
        assert first == again
        assert req == request(settings, model=MODELS.get(name, "Qwen/Qwen3-1.7B"), env={"A": "1"}, extra_args=("--x",))


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_solo_has_no_node_flags(name: str) -> None:
    (solo,) = RUNTIMES[name].build(request(model=MODELS.get(name, "Qwen/Qwen3-1.7B")), topology(1))
    node_flags = {"--nnodes", "--node-rank", "--master-addr", "--headless", "--dist-init-addr", "--rpc"}
    node_flags |= {"--rank", "--world-size", "--master-port", "mpirun", "trtllm-llmapi-launch"}
    assert not node_flags & set(solo.argv)
    assert solo.argv[:2] != ("bash", "-c")
    assert solo.mounts == ()


def test_builtins_are_discovered_through_entry_points() -> None:
    registry = load_runtimes()
    for name, runtime in RUNTIMES.items():
        loaded = registry.get(name)
        assert type(loaded) is type(runtime)
        assert loaded.name == name
        assert loaded.description
        assert loaded.default_image
