"""Runtime plugins: pure functions from a serve request and a topology to per-rank container specs.

Built-in runtimes are declared in the `sparkrun.runtimes` entry-point group like third-party ones and are loaded by
`sparkrun.plugins`. A runtime never touches a host; running its specs is the orchestration layer's job.
"""

from sparkrun.runtimes.base import Mount, RankSpec, Runtime, ServeRequest, Topology

__all__ = ["Mount", "RankSpec", "Runtime", "ServeRequest", "Topology"]
