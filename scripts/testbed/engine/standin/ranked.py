"""What the rank-based stand-ins share (`spark serve` of Atlas, `tokenary`): every rank runs the engine, joins a
TCP rendezvous at the master address (`--rank/--world-size/--master-addr/--master-port`, like an NCCL bootstrap),
and only rank 0 serves HTTP (when it has a port)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .rendezvous import Rendezvous
from .runtime import Fail, Lifecycle, Log, arm_ready_failure, knob, model_problem, startup, visible_gpus
from .server import HttpApp, ServedModel


@dataclass
class RankPlan:
    engine: str  # "atlas" | "tokenary"
    model: str
    served: str
    host: str
    port: int | None  # None: no HTTP on this rank
    rank: int
    world: int
    master: str
    master_port: int
    ctx: int


def bracket_style(tag: str) -> Callable[[str, str], str]:
    def style(level: str, line: str) -> str:
        return f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {level:>5} {tag}: {line}"

    return style


def check_rank(plan: RankPlan) -> None:
    if plan.world < 1 or not 0 <= plan.rank < plan.world:
        raise Fail(f"error: rank {plan.rank} must be in [0, world_size={plan.world})")
    gpus = visible_gpus()
    if gpus == 0:
        raise Fail("error: no CUDA device found (CUDA_ERROR_NO_DEVICE)")
    problem = model_problem(plan.model)
    if problem:
        raise Fail(problem)


def run_rank(plan: RankPlan, life: Lifecycle, log: Log, version: str) -> None:
    """Rendezvous (multi-rank), "load" the model, serve HTTP on rank 0 when it has a port, then run until stopped."""
    check_rank(plan)
    app = None
    if plan.port:
        served = ServedModel(plan.engine, plan.served, plan.model, plan.ctx)
        app = HttpApp(served, plan.host, plan.port, life, log, version)
        life.expect(app.start("refuse"))
    if plan.world > 1:
        Rendezvous(plan.engine, plan.world, plan.rank, plan.master, plan.master_port, life, log, "master").run()
    log.info(f"loading {plan.model} (rank {plan.rank}/{plan.world})")
    life.expect(startup(life, plan.engine))
    if app is None:
        log.info(f"rank {plan.rank}: ready; serving requests from rank 0")
    else:
        life.expect(app.set_ready(knob("STANDIN_EARLY_HTTP", "refuse")))
        log.info(f"serving {plan.served} on http://{plan.host}:{plan.port}/v1")
    arm_ready_failure(life, plan.engine)
