"""Which runtime plugin a recipe runs on: declared, or implied by its `command:`, the way the older sparkrun read it.

- Declared `runtime:` wins. `vllm` (declared or implied) is virtual: `vllm-ray` when the command (or the rendered
  command, or `defaults.distributed_executor_backend`) asks for `--distributed-executor-backend ray`, else
  `vllm-distributed`.
- Implied by the command: `vllm serve` → vllm, `sglang serve` / `python3 -m sglang.launch_server` → sglang,
  `llama-server` → llama-cpp, `trtllm-serve` → trtllm (as the older tool); also `max serve` → modular-max and
  `spark serve` → atlas, which the older tool ran as vllm-distributed (a launch that cannot work: its vLLM image has
  neither program). `tokenary` is not inferred (a bare word that may be part of a model name): declare it.
- Nothing to go by: `vllm`, as the older tool did.

The Ray test is wider than the older tool's (which saw only the literal `--distributed-executor-backend ray`): the
`=ray` and `_` spellings and a placeholder that renders to `ray` count too. Where the older tool picked
vllm-distributed for those, the command still asked vLLM for a Ray executor, which vLLM's own multi-node launcher
cannot provide; on one node both runtimes run the command unchanged.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sparkrun.recipes.model import Recipe

_START = r"(?:^|[\s;&|/(])"
_IMPLIED = (
    (re.compile(_START + r"vllm\s+serve\b"), "vllm"),
    (re.compile(_START + r"sglang\s+serve\b|\bsglang\.launch_server\b"), "sglang"),
    (re.compile(_START + r"llama-server\b"), "llama-cpp"),
    (re.compile(_START + r"trtllm-serve\b"), "trtllm"),
    (re.compile(_START + r"max\s+serve\b"), "modular-max"),
    (re.compile(_START + r"spark\s+serve\b"), "atlas"),
)
_RAY_BACKEND = re.compile(r"--distributed[-_]executor[-_]backend(?:\s+|=)['\"]?ray\b")


def infer_runtime(command: str | None) -> str | None:
    """The runtime a command implies (the first engine named in it), or None."""
    if not command:
        return None
    hits = [(match.start(), name) for pattern, name in _IMPLIED if (match := pattern.search(command))]
    return min(hits)[1] if hits else None


def asks_for_ray(recipe: Recipe) -> bool:
    """The recipe asks vLLM for the Ray executor: in its command (as written or with its defaults filled in) or as
    `defaults.distributed_executor_backend`."""
    from sparkrun.recipes.render import render_template  # deferred: keeps this module import-light for migrate.py

    if str(recipe.defaults.get("distributed_executor_backend", "")).strip().lower() == "ray":
        return True
    command = recipe.command or ""
    if _RAY_BACKEND.search(command):
        return True
    if "{" not in command:
        return False
    values = {**recipe.defaults, "model": recipe.model}
    return _RAY_BACKEND.search(render_template(command, values, escapes=recipe.brace_escapes).text) is not None


def resolve_runtime_name(recipe: Recipe) -> str:
    """The runtime plugin to use (see the module docstring)."""
    name = (recipe.runtime or "").strip() or infer_runtime(recipe.command) or "vllm"
    if name != "vllm":
        return name
    return "vllm-ray" if asks_for_ray(recipe) else "vllm-distributed"
