"""Entry points: the image's /usr/local/bin/{vllm,sglang,llama-server,rpc-server,ray} call main(NAME, argv)."""

from __future__ import annotations

import sys


def main(prog: str, argv: list[str]) -> int:
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
        return 2
    try:
        return run(argv)
    except KeyboardInterrupt:
        return 0
