"""Would the older sparkrun (0.4.2) accept a recipe with this finding? Decided from known rules, never by running it.

`recipe validate --json` reports `older_tool_accepts` per finding and for the recipe, so users see where sparkrun is
stricter than the tool it replaces, and where it is more lenient. The rules (established black-box against
`sparkrun==0.4.2 recipe validate`; recipes/README.md has the table):

- Findings the older tool also refuses: a file it cannot load (`load-error`), `missing-model`, `unknown-runtime`
  (unless it names one of the older tool's own runtimes, e.g. `trtllm`: then only a plugin is missing here),
  `conflicting-topology`, `invalid-node-range`, `invalid-value` (`mode:`), `invalid-hook`, `invalid-readiness`,
  `invalid-override` (bad shape, a forbidden key); wrong types of the keys its loader checks (`command`, `defaults`,
  `runtime`, `runtime_config`, `env` as a whole, `overrides`, `include`, `min_nodes`/`max_nodes`, `readiness`, the
  hook lists, `builder_config`, `executor`); `copy:` hooks outside `pre_exec`; and, among warnings, `newer-format`
  (it refuses a `min_sparkrun_version` above 0.4.2), `unknown-readiness-key`, `readiness-quoted-boolean`, and an
  executor other than docker or a builder other than docker-pull/eugr (`unsupported-executor`/`-builder`).
- Approximate: a fractional `min_nodes`/`max_nodes` (1.5) the older tool lets through is counted as refused.
- Everything else it accepts: its validator checks no setting values (`invalid-setting`), leaves unknown
  placeholders in the text (`unresolved-placeholder`), does not split the command (`invalid-command`), does not run
  the runtime's checks (`runtime-rejected`) and does not check other keys' types (`container`, `env.NAME`, `mods`,
  `metadata`, ...). Such a recipe usually fails later, at launch, in the older tool.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sparkrun.recipes.model import Issue

# The runtimes the older tool ships: a recipe naming one of them is accepted there even where no plugin provides it
# here (the finding then says a plugin is missing, not that the recipe is wrong).
OLDER_TOOL_RUNTIMES = frozenset(
    {
        "vllm",
        "vllm-distributed",
        "vllm-ray",
        "eugr-vllm",
        "sglang",
        "llama-cpp",
        "trtllm",
        "atlas",
        "modular-max",
        "tokenary",
    }
)
_UNKNOWN_RUNTIME = re.compile(r"unknown runtime '([^']*)'")

REFUSED_CODES = frozenset(
    {
        "load-error",
        "missing-model",
        "unknown-runtime",
        "conflicting-topology",
        "invalid-node-range",
        "invalid-value",
        "invalid-hook",
        "invalid-readiness",
        "invalid-override",
        "newer-format",
        "unknown-readiness-key",
        "readiness-quoted-boolean",
        "unsupported-executor",
        "unsupported-builder",
    }
)
REFUSED_TYPE_KEYS = frozenset(
    {
        "command",
        "defaults",
        "runtime",
        "runtime_config",
        "env",
        "overrides",
        "include",
        "min_nodes",
        "max_nodes",
        "readiness",
        "pre_exec",
        "post_exec",
        "post_commands",
        "builder_config",
        "executor",
    }
)


def older_tool_accepts(issue: Issue) -> bool:
    """Whether `sparkrun==0.4.2 recipe validate` would accept a recipe that has this finding."""
    if issue.code == "unknown-runtime":
        named = _UNKNOWN_RUNTIME.search(issue.message)
        return named is not None and named.group(1) in OLDER_TOOL_RUNTIMES
    if issue.code in REFUSED_CODES:
        return False
    if issue.code in ("invalid-type", "ignored-value"):
        return (issue.key or "") not in REFUSED_TYPE_KEYS
    if issue.code == "unsupported-hook":
        return (issue.key or "").startswith("pre_exec")
    return True


def older_tool_accepts_all(issues: Iterable[Issue]) -> bool:
    return all(older_tool_accepts(issue) for issue in issues)
