"""`python3 -m standin PROG [ARGS...]`, e.g. `python3 -m standin vllm serve Qwen/Qwen3-0.6B --port 8000`."""

from __future__ import annotations

import sys

from . import ENGINES
from .cli import main

if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: python3 -m standin {" + ",".join((*ENGINES, "sglang.launch_server")) + "} [ARGS...]")
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2:]))
