"""The core API: plan, run, status, logs and stop, taking plain values and returning results and events.

It imports no Click and prints nothing: progress reaches the caller as events (`sparkrun.core.events`) through the
`emit` callback, results come back as objects with `to_json()`. The CLI renders them; the Claude Code plugin, tests
and other programs call the same functions:

    from sparkrun.api import RecipeInput, Session, Target
    session = Session(emit=print)
    plan = session.plan_run(RecipeInput("qwen3-1.7b-vllm"), Target(hosts="spark1,spark2"))   # no connection
    result = session.run(RecipeInput("qwen3-1.7b-vllm", values={"tensor_parallel": 2}), Target(cluster="lab"))
    session.status(Target()).to_json()
    session.stop(Target(), result.job.job)
"""

from typing import TYPE_CHECKING, Any

from sparkrun.api.results import RunPlan, RunResult, Target
from sparkrun.api.session import Session

if TYPE_CHECKING:
    from sparkrun.launch.request import RecipeInput
    from sparkrun.setup import HostSetup, Limits, Prompts, SetupOptions, new_cluster, run_wizard

# Names of the launch and setup layers load on first use (PEP 562), so `status`/`logs`/`stop` do not pay for them.
_LAZY = {"RecipeInput": "sparkrun.launch.request"} | dict.fromkeys(
    ("HostSetup", "Limits", "Prompts", "SetupOptions", "new_cluster", "run_wizard"), "sparkrun.setup"
)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'sparkrun.api' has no attribute {name!r}")
    import importlib  # deferred: only a lazy name's first use gets here

    return getattr(importlib.import_module(_LAZY[name]), name)


__all__ = [
    "HostSetup",
    "Limits",
    "Prompts",
    "RecipeInput",
    "RunPlan",
    "RunResult",
    "Session",
    "SetupOptions",
    "Target",
    "new_cluster",
    "run_wizard",
]
