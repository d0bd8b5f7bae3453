"""`max serve` stand-in (Modular MAX): click flags (`--flag=value`, no prefixes), the model from `--model`, one
machine only: `--devices gpu:0` (or `gpu`, `gpu:all`, `gpu:0,1`, `cpu`) must fit the visible GPUs."""

from __future__ import annotations

import sys
import time

from .flags import Dialect, FlagSet, UsageError
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

FLAGS = FlagSet.load("max-serve", dialect=Dialect(equals=True, dash_values=True))
VERSION = version_from_list("max-serve", r"max-(\d+\.\d+\.\d+)-", "26.7.0")
USAGE = "Usage: max serve [OPTIONS]"


def click_error(message: str, usage: str = USAGE) -> int:
    print(f"{usage}\nTry 'max serve --help' for help.\n\nError: {message}", file=sys.stderr)
    return 2


def main(argv: list[str]) -> int:
    """`max [--version] [--log-level L] serve [options]`."""
    while argv[:1] == ["--log-level"] and len(argv) > 1:
        argv = argv[2:]
    if argv[:1] == ["--version"]:
        print(f"max {VERSION}")
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print("Usage: max [OPTIONS] COMMAND [ARGS]...\n\nCommands:\n  serve  Start a model serving endpoint.")
        return 0 if argv else 2
    if argv[0] != "serve":
        return click_error(f"No such command '{argv[0]}'.", "Usage: max [OPTIONS] COMMAND [ARGS]...")
    return serve(argv[1:])


def devices_needed(spec: str) -> int:
    """GPUs a `--devices` value asks for (0 for cpu); -1 for gpu:all."""
    if spec == "cpu":
        return 0
    if spec in ("gpu", "gpu:0"):
        return 1
    if spec == "gpu:all":
        return -1
    if spec.startswith("gpu:") and all(d.isdigit() for d in spec[4:].split(",")):
        return len(spec[4:].split(","))
    raise UsageError(f"Invalid value for '--devices': {spec!r} is not one of cpu, gpu, gpu:all, gpu:<ids>")


def serve(argv: list[str]) -> int:
    try:
        p = FLAGS.parse(argv)
        port = p.get_int("--port", 8000)
        needed = devices_needed(p.get("--devices") or "gpu")
    except UsageError as e:
        return click_error(str(e).replace("unrecognized arguments:", "No such option:"))
    if p.flag("--help"):
        print(USAGE)
        return 0
    if p.positionals:
        return click_error(f"Got unexpected extra argument ({p.positionals[0]})")
    model = p.get("--model")
    if not model:
        return click_error("Missing option '--model' / '--model-path'.")
    host = p.get("--host") or "0.0.0.0"
    served = p.get("--served-model-name") or model

    def style(level: str, line: str) -> str:
        return f"{time.strftime('%H:%M:%S')}.000 {level}: {line}"

    log = Log(style)
    life = Lifecycle(log)
    life.install_signals()

    def body() -> None:
        log.info(f"MAX {VERSION}: serving {model} on devices {p.get('--devices') or 'gpu'}")
        warn_unknown(log, p.unknown, f"max {VERSION}")
        gpus = visible_gpus()
        if needed != 0 and gpus == 0:
            raise Fail("ValueError: No GPU devices are available (requested --devices gpu)")
        if gpus is not None and needed > gpus:
            raise Fail(f"ValueError: requested {needed} GPU devices but only {gpus} are available")
        problem = model_problem(model)
        if problem:
            raise Fail(problem)
        app = HttpApp(
            ServedModel("max", served, model, p.get_int("--max-length", 8192)), host, port, life, log, VERSION
        )
        life.expect(app.start("refuse"))
        log.info("Building and compiling model...")
        life.expect(startup(life, "MAX"))
        life.expect(app.set_ready(knob("STANDIN_EARLY_HTTP", "refuse")))
        log.info(f"Server ready on http://{host}:{port} (Press CTRL+C to quit)")
        arm_ready_failure(life, "MAX")

    return life.run(body)
