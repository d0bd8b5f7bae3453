"""Would the older sparkrun (0.4.2) accept a recipe with this finding? Decided from known rules, never by running it.

`recipe validate --json` reports `older_tool_accepts` per finding and for the recipe, so users see where sparkrun is
stricter than the tool it replaces, and where it is more lenient. The rules (established black-box against
`sparkrun==0.4.2 recipe validate`; recipes/README.md has the table):

- Findings the older tool also refuses: a file it cannot load (`load-error`), `missing-model`, `unknown-runtime`,
  `conflicting-topology`, `invalid-node-range`, `invalid-value` (`mode:`), `invalid-hook`, `invalid-readiness`,
  `invalid-override` (bad shape, a forbidden key); wrong types of the keys its loader checks (`command`, `defaults`,
  `runtime`, `runtime_config`, `env` as a whole, `overrides`, `include`, `min_nodes`/`max_nodes`, `readiness`, the
  hook lists, `builder_config`); `copy:` hooks outside `pre_exec`; and, among warnings, `newer-format` (it refuses a
  `min_sparkrun_version` above 0.4.2), `unknown-readiness-key` and `readiness-quoted-boolean` (it refuses both).
- Everything else it accepts: its validator checks no setting values (`invalid-setting`), leaves unknown
  placeholders in the text (`unresolved-placeholder`), does not split the command (`invalid-command`), does not run
  the runtime's checks (`runtime-rejected`) and does not check other keys' types (`container`, `env.NAME`, `mods`,
  `metadata`, ...). Such a recipe usually fails later, at launch, in the older tool.
"""

from __future__ import annotations

from collections.abc import Iterable

from sparkrun.recipes.model import Issue

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
    }
)


def older_tool_accepts(issue: Issue) -> bool:
    """Whether `sparkrun==0.4.2 recipe validate` would accept a recipe that has this finding."""
    if issue.code in REFUSED_CODES:
        return False
    if issue.code == "invalid-type":
        return (issue.key or "") not in REFUSED_TYPE_KEYS
    if issue.code == "unsupported-hook":
        return (issue.key or "").startswith("pre_exec")
    return True


def older_tool_accepts_all(issues: Iterable[Issue]) -> bool:
    return all(older_tool_accepts(issue) for issue in issues)
