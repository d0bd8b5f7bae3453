"""`tokenary` stand-in. Its real flags are UNVERIFIED (flags/tokenary.txt lists what sparkrun emits); ranks join at
the master address (`--rank/--world-size/--master-addr/--master-port`, `--tp-size` = world size) and `--server
--port P` makes a rank serve HTTP (rank 0 in sparkrun's launches)."""

from __future__ import annotations

import sys

from .flags import Dialect, FlagSet, UsageError
from .ranked import RankPlan, bracket_style, run_rank
from .runtime import Fail, Lifecycle, Log, warn_unknown

FLAGS = FlagSet.load("tokenary", dialect=Dialect(equals=True))
VERSION = "0.0.0-standin (engine version unknown)"
USAGE = "Usage: tokenary --model MODEL [OPTIONS]"


def usage_error(message: str) -> int:
    print(f"error: {message}\n\n{USAGE}", file=sys.stderr)
    return 2


def main(argv: list[str]) -> int:
    if argv[:1] in (["--version"], ["-V"]):
        print(f"tokenary {VERSION}")
        return 0
    if argv[:1] in (["--help"], ["-h"]):
        print(USAGE)
        return 0
    try:
        p = FLAGS.parse(argv)
        ints = {f: p.get_int(f, d) for f, d in (("--rank", 0), ("--world-size", 1), ("--tp-size", 1))}
        port = p.get_int("--port", 8000)
        master_port = p.get_int("--master-port", 29500)
    except UsageError as e:
        return usage_error(str(e).replace("unrecognized arguments:", "unexpected argument"))
    model = p.get("--model")
    if not model:
        return usage_error("the following required arguments were not provided: --model <MODEL>")
    world, tp = ints["--world-size"], ints["--tp-size"]
    plan = RankPlan(
        engine="tokenary",
        model=model,
        served=model,
        host=p.get("--host") or "0.0.0.0",
        port=port if p.flag("--server") else None,
        rank=ints["--rank"],
        world=world,
        master=p.get("--master-addr") or "127.0.0.1",
        master_port=master_port,
        ctx=p.get_int("--max-model-len", 8192),
    )
    log = Log(bracket_style("tokenary"))
    life = Lifecycle(log)
    life.install_signals()

    def body() -> None:
        log.info(f"tokenary {VERSION}: model={model} rank={plan.rank} world_size={world} tp_size={tp}")
        warn_unknown(log, p.unknown, "tokenary")
        if world > 1 and tp != world:
            raise Fail(f"error: tp_size ({tp}) must equal world_size ({world})")
        if world > 1 and (p.flag("--encode-only") or p.flag("--ner")):
            raise Fail("error: --encode-only and --ner run on a single GPU (world_size 1)")
        if plan.port is None and world == 1:
            log.info("no --server: generated one completion for the default prompt; exiting")
            life.stopped.set()
            return
        run_rank(plan, life, log, VERSION)

    return life.run(body)
