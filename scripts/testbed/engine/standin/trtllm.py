"""`trtllm-serve` stand-in (TensorRT-LLM): click flags (`--flag=value`, underscores, no prefixes), `trtllm-serve
[serve] MODEL [options]`. Solo it needs `tp_size x pp_size` visible GPUs; under `mpirun … trtllm-llmapi-launch
trtllm-serve …` (see mpi.py) rank 0 serves and the MPI world size must equal `tp_size x pp_size`."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

from .flags import Dialect, FlagSet, UsageError
from .runtime import (
    Fail,
    Lifecycle,
    Log,
    arm_ready_failure,
    knob,
    model_problem,
    startup,
    visible_gpus,
    warn_unknown,
)
from .server import HttpApp, ServedModel

FLAGS = FlagSet.load("trtllm-serve", dialect=Dialect(equals=True, dash_values=True, max_positionals=1))
VERSION = "1.4.0rc1"  # the list's commit is of the 1.3/1.4 rc era (flags/trtllm-serve.txt header)
USAGE = "Usage: trtllm-serve serve [OPTIONS] MODEL"
BACKENDS = ("pytorch", "_autodeploy", "tensorrt", "trt")  # the last two: older releases
OTHER_COMMANDS = ("disaggregated", "disaggregated_mpi_worker", "mm_embedding_serve")


@dataclass
class Plan:
    model: str
    served: str
    host: str
    port: int
    tp: int
    pp: int
    backend: str
    max_len: int
    unknown: list[str]


def click_error(message: str) -> int:
    print(f"{USAGE}\nTry 'trtllm-serve serve --help' for help.\n\nError: {message}", file=sys.stderr)
    return 2


def parse(argv: list[str]) -> Plan | None:
    """The plan for a `serve` command line (without the `serve` word); None for --help; UsageError like click."""
    p = FLAGS.parse(argv)
    if p.flag("--help"):
        return None
    if not p.positionals:
        raise UsageError("Missing argument 'MODEL'.")
    backend = p.get("--backend") or "pytorch"
    if backend not in BACKENDS:
        raise UsageError(f"Invalid value for '--backend': '{backend}' is not one of 'pytorch', '_autodeploy'.")
    model = p.positionals[0]
    return Plan(
        model=model,
        served=p.get("--served_model_name") or model,
        host=p.get("--host") or "localhost",
        port=p.get_int("--port", 8000),
        tp=p.get_int("--tensor_parallel_size", 1),
        pp=p.get_int("--pipeline_parallel_size", 1),
        backend=backend,
        max_len=p.get_int("--max_seq_len", 8192),
        unknown=p.unknown,
    )


def style(level: str, line: str) -> str:
    return f"[{time.strftime('%m/%d/%Y-%H:%M:%S')}] [TRT-LLM] [{level[0]}] {line}"


def check(plan: Plan, world: int) -> None:
    need = plan.tp * plan.pp
    if world > 1:
        if need != world:
            raise Fail(f"ValueError: tp_size * pp_size ({need}) must equal the MPI world size ({world})")
    else:
        gpus = visible_gpus()
        if gpus == 0:
            raise Fail("RuntimeError: No CUDA GPUs are available")
        if gpus is not None and need > gpus:
            raise Fail(
                f"RuntimeError: tp_size * pp_size = {need} needs {need} GPUs but {gpus} are visible; run across "
                "nodes with `mpirun ... trtllm-llmapi-launch trtllm-serve ...`"
            )
    problem = model_problem(plan.model)
    if problem:
        raise Fail(problem)


def run(plan: Plan, life: Lifecycle, log: Log, world: int = 1) -> None:
    """Serve `plan` in `life` (rank 0 of an MPI world of `world` ranks, or alone)."""
    log.info(f"TensorRT-LLM version: {VERSION}")
    warn_unknown(log, plan.unknown, f"trtllm-serve {VERSION}")
    log.info(f"backend={plan.backend} model={plan.model} tp_size={plan.tp} pp_size={plan.pp} world_size={world}")
    check(plan, world)
    app = HttpApp(
        ServedModel("trtllm", plan.served, plan.model, plan.max_len), plan.host, plan.port, life, log, VERSION
    )
    life.expect(app.start("refuse"))
    log.info(f"Loading model {plan.model} ...")
    life.expect(startup(life, "TensorRT-LLM"))
    life.expect(app.set_ready(knob("STANDIN_EARLY_HTTP", "refuse")))
    log.info(f"Uvicorn running on http://{plan.host}:{plan.port} (Press CTRL+C to quit)")
    arm_ready_failure(life, "TensorRT-LLM")


def command_line(argv: list[str]) -> list[str] | int:
    """The serve arguments of a `trtllm-serve` command line, or an exit status (--version, usage errors)."""
    if argv[:1] == ["--version"]:
        print(f"trtllm-serve, version {VERSION}")
        return 0
    if argv[:1] == ["serve"]:
        return argv[1:]
    if argv[:1] and argv[0] in OTHER_COMMANDS:
        print(f"trtllm-serve stand-in: '{argv[0]}' is not simulated", file=sys.stderr)
        return 2
    return argv  # the group resolves anything else to `serve`


def main(argv: list[str], world: int = 1) -> int:
    args = command_line(argv)
    if isinstance(args, int):
        return args
    try:
        plan = parse(args)
    except UsageError as e:
        return click_error(str(e).replace("unrecognized arguments:", "No such option:"))
    if plan is None:
        print(USAGE)
        return 0
    log = Log(style)
    life = Lifecycle(log)
    life.install_signals()
    mpi_size = int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1") or 1)
    if world == 1 and mpi_size > 1:
        log.error(f"trtllm-serve runs in an MPI world of {mpi_size} ranks: start it through trtllm-llmapi-launch")
        return 1
    return life.run(lambda: run(plan, life, log, world))
