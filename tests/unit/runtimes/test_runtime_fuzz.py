"""Any recipe input either plans or fails with a RecipeError: never a traceback (hypothesis)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runtime_cases import topology

from sparkrun.errors import RecipeError
from sparkrun.runtimes.atlas import AtlasRuntime
from sparkrun.runtimes.base import RankSpec, ServeRequest
from sparkrun.runtimes.eugr import EugrVllmRuntime
from sparkrun.runtimes.llama_cpp import LlamaCppRuntime
from sparkrun.runtimes.modular_max import ModularMaxRuntime
from sparkrun.runtimes.network import parse_ib_detect_output
from sparkrun.runtimes.sglang import SglangRuntime
from sparkrun.runtimes.tokenary import TokenaryRuntime
from sparkrun.runtimes.trtllm import TrtllmRuntime
from sparkrun.runtimes.vllm import VllmDistributedRuntime, VllmRayRuntime

RUNTIMES = [
    VllmDistributedRuntime(),
    VllmRayRuntime(),
    SglangRuntime(),
    LlamaCppRuntime(),
    EugrVllmRuntime(),
    TrtllmRuntime(),
    ModularMaxRuntime(),
    AtlasRuntime(),
    TokenaryRuntime(),
]
KEYS = sorted({key for runtime in RUNTIMES for key in runtime.mapped_keys()} | {"port", "host"})
SCALARS = st.none() | st.booleans() | st.integers(-5, 70000) | st.floats(allow_nan=False) | st.text(max_size=12)
VALUES = SCALARS | st.lists(SCALARS, max_size=3) | st.dictionaries(st.text(max_size=5), SCALARS, max_size=3)
TOKENS = st.sampled_from(
    [
        "vllm",
        "serve",
        "sglang",
        "llama-server",
        "-tp",
        "2",
        "--port",
        "x",
        "--master-port",
        "--nnodes",
        "--node-rank",
        "--dist-init-addr",
        "h:1",
        "--rpc",
        "trtllm-serve",
        "--tp_size",
        "mpirun",
        "spark",
        "--rank",
        "--world-size",
        "tokenary",
        "--server",
        "max",
        "--devices",
        "--expert_parallel",
        ";",
        "export",
        "A=1",
        "bash",
        "-c",
        "--distributed-executor-backend",
        "ray",
        "mp",
        "--headless",
        "--tp",
        "--port=9",
    ]
) | st.text(max_size=8)


@pytest.mark.parametrize("runtime", RUNTIMES, ids=lambda runtime: runtime.name)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=8),
    command=st.none() | st.lists(TOKENS, max_size=10).map(tuple),
    extra=st.lists(TOKENS, max_size=3).map(tuple),
    model=st.sampled_from(["Qwen/Qwen3-1.7B", "Qwen/Qwen3-1.7B-GGUF:Q8_0", "/m.gguf", "", "a b"]),
    nodes=st.sampled_from([1, 2, 3]),
)
def test_build_plans_or_raises_a_recipe_error(
    runtime: Any,
    values: dict[str, Any],
    command: tuple[str, ...] | None,
    extra: tuple[str, ...],
    model: str,
    nodes: int,
) -> None:
    req = ServeRequest(model=model, image="vllm-node", settings=values, command=command, extra_args=extra)
    try:
        specs = runtime.build(req, topology(nodes))
    except RecipeError:
        return
    assert len(specs) == nodes
    assert all(isinstance(spec, RankSpec) and all(isinstance(arg, str) for arg in spec.argv) for spec in specs)
    runtime.validate(req)


@given(st.text(max_size=200))
def test_ib_output_parser_only_raises_value_error(text: str) -> None:
    try:
        parsed = parse_ib_detect_output(text)
    except ValueError:
        return
    assert all("\n" not in value and "=" not in key for key, value in parsed.items())
