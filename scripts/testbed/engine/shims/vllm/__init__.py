"""Stand-in `vllm` package (sparkrun testbed): `vllm.__version__` and the old api_server entry point."""

from standin.vllm import VERSION as __version__

__all__ = ["__version__"]
