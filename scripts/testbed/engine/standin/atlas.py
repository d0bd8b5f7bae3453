"""`spark serve` stand-in (the Atlas engine's binary): clap flags (`--flag=value`, no prefixes; some flags take an
optional value), NCCL-style ranks (`--rank/--world-size/--master-addr/--master-port`, `--tp-size/--ep-size`); ranks
with `--port 0` serve no HTTP."""

from __future__ import annotations

import sys

from .flags import Dialect, FlagSet, UsageError
from .ranked import RankPlan, bracket_style, run_rank
from .runtime import Fail, Lifecycle, Log, warn_unknown

# Flags that take 0 or 1 value (flags/atlas.txt header).
OPTIONAL = frozenset(
    {
        "--gdn-fused-norm",
        "--ssm-batched-recurrent",
        "--prefill-varlen-batch",
        "--exact-verify",
        "--enable-prefix-caching",
        "--exact-prefix-cache",
        "--dump",
        "--auto-compact",
    }
)
FLAGS = FlagSet.load("atlas", dialect=Dialect(equals=True, max_positionals=1), optional_value=OPTIONAL)
VERSION = "1.0.0-beta-preview"
USAGE = "Usage: spark serve [OPTIONS] [MODEL]"


def clap_error(message: str) -> int:
    print(f"error: {message}\n\n{USAGE}\n\nFor more information, try '--help'.", file=sys.stderr)
    return 2


def main(argv: list[str]) -> int:
    if argv[:1] in (["--version"], ["-V"]):
        print(f"spark {VERSION}")
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print("Usage: spark <COMMAND>\n\nCommands:\n  serve\n  benchmark\n  help")
        return 0 if argv else 2
    if argv[0] != "serve":
        return clap_error(f"unrecognized subcommand '{argv[0]}'")
    return serve(argv[1:])


def serve(argv: list[str]) -> int:
    try:
        p = FLAGS.parse(argv)
        ints = {f: p.get_int(f, d) for f, d in (("--rank", 0), ("--world-size", 1), ("--tp-size", 1), ("--ep-size", 1))}
        port = p.get_int("--port", 8888)
        master_port = p.get_int("--master-port", 29500)
    except UsageError as e:
        return clap_error(str(e).replace("unrecognized arguments:", "unexpected argument"))
    if p.flag("--help"):
        print(USAGE)
        return 0
    model = (p.positionals or [p.get("--model-from-path") or ""])[0]
    if not model:
        return clap_error("a model is required: spark serve MODEL")
    world, tp, ep = ints["--world-size"], ints["--tp-size"], ints["--ep-size"]
    plan = RankPlan(
        engine="atlas",
        model=model,
        served=p.get("--model-name") or model,
        host=p.get("--bind") or "0.0.0.0",
        port=port or None,
        rank=ints["--rank"],
        world=world,
        master=p.get("--master-addr") or "127.0.0.1",
        master_port=master_port,
        ctx=p.get_int("--max-seq-len", 8192),
    )
    log = Log(bracket_style("spark_server"))
    life = Lifecycle(log)
    life.install_signals()

    def body() -> None:
        log.info(f"Atlas spark {VERSION}: serve {model} rank={plan.rank} world_size={world} tp={tp} ep={ep}")
        warn_unknown(log, p.unknown, f"spark {VERSION}")
        if world > 1 and world != tp * ep and tp != ep:
            raise Fail(f"error: world_size ({world}) must equal tp_size * ep_size ({tp} x {ep}) or tp_size == ep_size")
        run_rank(plan, life, log, VERSION)

    return life.run(body)
