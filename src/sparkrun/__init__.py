"""sparkrun: launch, watch and stop LLM inference workloads on DGX Spark clusters over SSH.

Kept tiny on purpose: `sparkrun --help` and `--version` import this module and almost nothing else.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
