"""`python3 -m vllm.entrypoints.openai.api_server ...` (sparkrun testbed stand-in)."""

import sys

from standin.cli import main

if __name__ == "__main__":
    sys.exit(main("vllm.api_server", sys.argv[1:]))
