"""`vllm serve` stand-in: flags of vLLM's serve parser, native multi-node (--nnodes/--node-rank/--master-addr,
workers --headless) and the Ray executor (--distributed-executor-backend ray)."""

from __future__ import annotations

import os
import sys
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
    startup,
    version_from_list,
    visible_gpus,
    warn_unknown,
)
from .server import HttpApp, ServedModel

FLAGS = FlagSet.load(
    "vllm-serve",
    dialect=Dialect(
        equals=True,
        abbrev=True,
        snake_case=True,
        dotted_config=True,
        max_positionals=1,
        attached_short=True,
        vllm_opt_level=True,
    ),
    nargs={"--served-model-name": "+", "--api-key": "+", "--lora-modules": "+", "--hf-token": "?"},
)
VERSION = version_from_list("vllm-serve", r"vllm\.__version__ ([0-9][^ ,)]*)", "0.33.0")
DEFAULT_MODEL = "Qwen/Qwen3-0.6B"
USAGE = "usage: vllm serve [model_tag] [options]"
TOP_USAGE = "usage: vllm [-h] [-v] {chat,complete,serve,bench,collect-env,run-batch} ..."


def _style(level: str, line: str) -> str:
    import time

    return f"{level} {time.strftime('%m-%d %H:%M:%S')} [api_server.py] {line}"


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(TOP_USAGE)
        return 0 if argv else 2
    if argv[0] in ("-v", "--version"):
        print(VERSION)
        return 0
    if argv[0] != "serve":
        print(TOP_USAGE, file=sys.stderr)
        print(f"vllm: error: argument subparser: invalid choice: '{argv[0]}'", file=sys.stderr)
        return 2
    return serve(argv[1:])


@dataclass
class Plan:
    model: str
    names: list[str]
    host: str
    port: int
    tp: int
    pp: int
    nnodes: int
    rank: int
    master: str
    master_port: int
    headless: bool
    backend: str
    max_len: int
    unknown: list[str]
    api_keys: tuple[str, ...] = ()


def _api_keys(given: list[str]) -> tuple[str, ...]:
    """vLLM's --api-key (several allowed), else the VLLM_API_KEY environment variable."""
    env = os.environ.get("VLLM_API_KEY")
    return tuple(given) if given else ((env,) if env else ())


def parse(argv: list[str]) -> Plan | None:
    """The plan for this command line; None for --help. Raises UsageError like the real parser."""
    p = FLAGS.parse(argv)
    if p.flag("--help"):
        return None
    model = p.positionals[0] if p.positionals else (p.get("--model") or DEFAULT_MODEL)
    tp = p.get_int("--tensor-parallel-size", 1)
    pp = p.get_int("--pipeline-parallel-size", 1)
    nnodes = p.get_int("--nnodes", 1)
    return Plan(
        model=model,
        names=p.get_all("--served-model-name") or [model],
        host=p.get("--host") or "0.0.0.0",
        port=p.get_int("--port", 8000),
        tp=tp,
        pp=pp,
        nnodes=nnodes,
        rank=p.get_int("--node-rank", 0),
        master=p.get("--master-addr") or "127.0.0.1",
        master_port=p.get_int("--master-port", 29501),
        headless=p.flag("--headless"),
        backend=p.get("--distributed-executor-backend") or ("mp" if nnodes > 1 or tp * pp > 1 else "uni"),
        max_len=p.get_int("--max-model-len", 8192),
        api_keys=_api_keys(p.get_all("--api-key")),
        unknown=p.unknown,
    )


def check(plan: Plan) -> None:
    """Fail the way vLLM does for a placement this node cannot run."""
    world = plan.tp * plan.pp
    if not 0 <= plan.rank < plan.nnodes:
        raise Fail(f"ValueError: node_rank ({plan.rank}) must be in [0, nnodes={plan.nnodes})")
    if plan.backend != "ray":  # with Ray, GPUs are counted across the Ray cluster instead
        if world % plan.nnodes:
            raise Fail(
                f"ValueError: world size tensor_parallel_size*pipeline_parallel_size = {world} is not divisible by "
                f"nnodes = {plan.nnodes}"
            )
        gpus = visible_gpus()
        if gpus == 0:
            raise Fail("RuntimeError: No CUDA GPUs are available")
        if gpus is not None and world // plan.nnodes > gpus:
            raise Fail(
                f"ValueError: this node needs {world // plan.nnodes} GPUs (tp={plan.tp} x pp={plan.pp} over "
                f"{plan.nnodes} nodes) but only {gpus} GPU(s) are visible"
            )
    problem = model_problem(plan.model)
    if problem:
        raise Fail(problem)


def run(plan: Plan, life: Lifecycle, log: Log) -> None:
    log.info(f"vLLM API server version {VERSION}")
    warn_unknown(log, plan.unknown, f"vllm {VERSION}")
    log.info(
        f"args: model={plan.model!r} served_model_name={plan.names} tp={plan.tp} pp={plan.pp} nnodes={plan.nnodes} "
        f"node_rank={plan.rank} headless={plan.headless} distributed_executor_backend={plan.backend!r}"
    )
    check(plan)
    early = knob("STANDIN_EARLY_HTTP", "hang")
    app = None
    if not plan.headless:
        served = ServedModel(
            "vllm",
            plan.names[0],
            plan.model,
            plan.max_len,
            check_model_field=True,
            aliases=tuple(plan.names[1:]),
            api_keys=plan.api_keys,
        )
        app = HttpApp(served, plan.host, plan.port, life, log, VERSION)
        life.expect(app.start(early))
    if plan.backend == "ray":
        from .raycluster import wait_for_ray_gpus

        wait_for_ray_gpus(plan.tp * plan.pp, life, log)
    elif plan.nnodes > 1:
        Rendezvous("vllm", plan.nnodes, plan.rank, plan.master, plan.master_port, life, log, "master").run()
    log.info(f"Loading model {plan.model} ...")
    life.expect(startup(life, "vLLM"))
    log.info("Model loading took 0.50 GiB and 0.5 seconds")
    if app is None:
        log.info(f"Running headless: engine core of node rank {plan.rank} is ready; serving requests from the head")
    else:
        life.expect(app.set_ready(early))
        log.info(f"Starting vLLM API server 0 on http://{plan.host}:{plan.port}")
        log.info("Available routes are: /health, /v1/models, /v1/chat/completions, /v1/completions, /version")
        log.info("Application startup complete.")
    arm_ready_failure(life, "vLLM")


def serve(argv: list[str], usage: str = USAGE, prog: str = "vllm serve") -> int:
    try:
        plan = parse(argv)
    except UsageError as e:
        print(usage, file=sys.stderr)
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    if plan is None:
        print(usage)
        return 0
    log = Log(_style)
    life = Lifecycle(log)
    life.install_signals()
    code = life.run(lambda: run(plan, life, log))
    log.info("Shutting down" if code == 0 else f"exiting with status {code}")
    return code


def api_server(argv: list[str]) -> int:
    """`python3 -m vllm.entrypoints.openai.api_server --model M ...` (the pre-`vllm serve` entry point)."""
    return serve(argv, "usage: api_server.py [options]", "api_server.py")
