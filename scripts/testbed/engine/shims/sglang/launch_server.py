"""`python3 -m sglang.launch_server ...` (sparkrun testbed stand-in)."""

import sys

from standin.cli import main

if __name__ == "__main__":
    sys.exit(main("sglang.launch_server", sys.argv[1:]))
