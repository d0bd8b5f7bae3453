"""Entry points: the image's /usr/local/bin/{vllm,sglang,llama-server,rpc-server,ray} call main(NAME, argv)."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import NoReturn


def main(prog: str, argv: list[str]) -> NoReturn:
    if prog == "vllm":
        from .vllm import main as run
    elif prog == "sglang":
        from .sglang import main as run
    elif prog == "sglang.launch_server":
        from .sglang import launch_server as run
    elif prog == "vllm.api_server":
        from .vllm import api_server as run
    elif prog == "llama-server":
        from .llama import llama_server as run
    elif prog == "rpc-server":
        from .llama import rpc_server as run
    elif prog == "ray":
        from .ray import main as run
    else:
        print(f"standin: unknown engine {prog!r}", file=sys.stderr)
        sys.exit(2)
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
