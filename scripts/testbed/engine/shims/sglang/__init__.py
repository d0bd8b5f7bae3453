"""Stand-in `sglang` package (sparkrun testbed): `python3 -m sglang.launch_server` and `sglang.__version__`."""

from standin.sglang import VERSION as __version__

__all__ = ["__version__"]
