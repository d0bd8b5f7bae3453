"""Entry points: each executable of the image (/usr/local/bin/NAME, NAME in ENGINES) calls main(NAME, argv)."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from typing import NoReturn

# executable -> (module, function): the module is imported only for the engine that runs
PROGRAMS = {
    "vllm": ("vllm", "main"),
    "vllm.api_server": ("vllm", "api_server"),
    "sglang": ("sglang", "main"),
    "sglang.launch_server": ("sglang", "launch_server"),
    "llama-server": ("llama", "llama_server"),
    "rpc-server": ("llama", "rpc_server"),
    "ray": ("ray", "main"),
    "trtllm-serve": ("trtllm", "main"),
    "trtllm-llmapi-launch": ("mpi", "llmapi_launch"),
    "mpirun": ("mpi", "main"),
    "max": ("maxserve", "main"),
    "spark": ("atlas", "main"),
    "tokenary": ("tokenary", "main"),
}


def main(prog: str, argv: list[str]) -> NoReturn:
    if prog not in PROGRAMS:
        print(f"standin: unknown engine {prog!r}", file=sys.stderr)
        sys.exit(2)
    module, function = PROGRAMS[prog]
    run = getattr(importlib.import_module(f".{module}", __package__), function)
    try:
        code = run(argv)
    except KeyboardInterrupt:
        code = 0
    # Leave without interpreter finalization: daemon threads still blocked in sockets can crash it (SIGSEGV, exit
    # 139) instead of the status the engine chose.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
