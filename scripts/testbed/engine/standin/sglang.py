"""`sglang serve` / `python3 -m sglang.launch_server` stand-in: SGLang's server flags and native multi-node
(--dist-init-addr HOST:PORT --nnodes N --node-rank r). Rank 0 serves the API; other ranks only /health."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from .flags import Dialect, FlagSet, UsageError
from .rendezvous import Rendezvous
from .runtime import (
    Fail,
    Lifecycle,
    Log,
    arm_ready_failure,
    knob,
    model_problem,
    split_hostport,
    startup,
    version_from_list,
    visible_gpus,
    warn_unknown,
)
from .server import HttpApp, ServedModel

FLAGS = FlagSet.load(
    "sglang-serve",
    dialect=Dialect(equals=True, abbrev=True, attached_short=True),
    nargs={
        "--lora-paths": "*",
        "--cuda-graph-bs-decode": "+",
        "--cuda-graph-bs-prefill": "+",
        # flags of earlier releases (sglang-serve.older.txt)
        "--cuda-graph-bs": "+",
        "--piecewise-cuda-graph-tokens": "+",
    },
    older="sglang-serve.older",
)
VERSION = version_from_list("sglang-serve", r"\(sglang ([0-9][^ )]*)\)", "0.5.23")
USAGE = "usage: sglang serve [-h] --model-path MODEL_PATH [options]"
LAUNCH_USAGE = "usage: launch_server.py [-h] --model-path MODEL_PATH [options]"


def main(argv: list[str]) -> int:
    """The `sglang` command: `sglang serve ...`, `sglang version` / `sglang --version`."""
    if argv and argv[0] in ("--version", "-v", "version"):
        print(f"sglang {VERSION}")
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: sglang [-h] {serve,generate,version} ...")
        return 0 if argv else 2
    if argv[0] != "serve":
        print(f"sglang: error: argument command: invalid choice: '{argv[0]}'", file=sys.stderr)
        return 2
    return serve(argv[1:], USAGE, "sglang serve")


def launch_server(argv: list[str]) -> int:
    """`python3 -m sglang.launch_server ...`."""
    return serve(argv, LAUNCH_USAGE, "launch_server.py")


@dataclass
class Plan:
    model: str
    served: str
    host: str
    port: int
    tp: int
    pp: int
    nnodes: int
    rank: int
    dist: str | None
    ctx: int
    unknown: list[str]


def parse(argv: list[str]) -> Plan | None:
    p = FLAGS.parse(argv)
    if p.flag("--help"):
        return None
    model = p.get("--model-path")
    if not model:
        raise UsageError("the following arguments are required: --model-path/--model")
    return Plan(
        model=model,
        served=p.get("--served-model-name") or model,
        host=p.get("--host") or "127.0.0.1",
        port=p.get_int("--port", 30000),
        tp=p.get_int("--tp-size", 1),
        pp=p.get_int("--pp-size", 1),
        nnodes=p.get_int("--nnodes", 1),
        rank=p.get_int("--node-rank", 0),
        dist=p.get("--dist-init-addr"),
        ctx=p.get_int("--context-length", 8192),
        unknown=p.unknown,
    )


def check(plan: Plan) -> None:
    world = plan.tp * plan.pp
    if not 0 <= plan.rank < plan.nnodes:
        raise Fail(f"ValueError: node_rank ({plan.rank}) must be in [0, nnodes={plan.nnodes})")
    if world % plan.nnodes:
        raise Fail(f"AssertionError: tp_size * pp_size = {world} must be divisible by nnodes = {plan.nnodes}")
    gpus = visible_gpus()
    if gpus == 0:
        raise Fail("RuntimeError: No CUDA GPUs are available")
    if gpus is not None and world // plan.nnodes > gpus:
        raise Fail(f"RuntimeError: this node needs {world // plan.nnodes} GPUs but only {gpus} are visible")
    problem = model_problem(plan.model)
    if problem:
        raise Fail(problem)
    if plan.nnodes > 1 and not plan.dist:
        raise Fail("ValueError: --dist-init-addr is required when --nnodes > 1")


def run(plan: Plan, life: Lifecycle, log: Log) -> None:
    log.info(
        f"server_args=ServerArgs(model_path='{plan.model}', served_model_name='{plan.served}', tp_size={plan.tp}, "
        f"pp_size={plan.pp}, nnodes={plan.nnodes}, node_rank={plan.rank}, dist_init_addr={plan.dist!r}, "
        f"host='{plan.host}', port={plan.port})"
    )
    warn_unknown(log, plan.unknown, f"sglang {VERSION}")
    check(plan)
    early = knob("STANDIN_EARLY_HTTP", "refuse")
    served = ServedModel("sglang", plan.served, plan.model, plan.ctx, health_only=plan.rank > 0)
    app = HttpApp(served, plan.host, plan.port, life, log, VERSION)
    life.expect(app.start(early))
    if plan.nnodes > 1 and plan.dist:
        try:
            addr, port = split_hostport(plan.dist, "--dist-init-addr")
        except ValueError as e:
            raise Fail(f"ValueError: {e}") from None
        Rendezvous("sglang", plan.nnodes, plan.rank, addr, port, life, log, "dist-init address").run()
    log.info(f"Load weight begin. model={plan.model}")
    life.expect(startup(life, "SGLang"))
    log.info("Load weight end. type=StandIn, dtype=torch.bfloat16, avail mem=100.00 GB")
    life.expect(app.set_ready(early))
    if plan.rank == 0:
        log.info(f"Uvicorn running on http://{plan.host}:{plan.port} (Press CTRL+C to quit)")
        log.info("The server is fired up and ready to roll!")
    else:
        log.info(f"node rank {plan.rank}: scheduler ready; health check server on http://{plan.host}:{plan.port}")
    arm_ready_failure(life, "SGLang")


def serve(argv: list[str], usage: str, prog: str) -> int:
    try:
        plan = parse(argv)
    except UsageError as e:
        print(usage, file=sys.stderr)
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    if plan is None:
        print(usage)
        return 0
    tag = f" TP{plan.rank * max(1, plan.tp // max(1, plan.nnodes))}" if plan.nnodes > 1 else ""

    def style(_level: str, line: str) -> str:
        return f"[{time.strftime('%Y-%m-%d %H:%M:%S')}{tag}] {line}"

    log = Log(style)
    life = Lifecycle(log)
    life.install_signals()
    return life.run(lambda: run(plan, life, log))
