"""The settings keys sparkrun itself knows by name. Data only, no imports: `cli/options.py` reads it while parsing.

- `CLI_SETTING_KEYS`: the serve values the command line sets (`--tp`, `--pp`, `--gpu-mem`, `--max-model-len`,
  `--port`, `--served-model-name`; same names as the older sparkrun). Each lands in the value chain's `cli` layer
  under the key of the same name, above `overrides:` and the recipe's `defaults:`.
- `SPARKRUN_SETTING_KEYS`: every key sparkrun reads itself (topology, ports, readiness address, override
  selectors), so the validator never calls them "unmapped" even when a `command:` template does not use them.
- `HOOK_LAUNCH_KEYS`: the launch-time values hooks may use as `{name}` besides the settings.
- `LAUNCH_TOKEN_KEYS`: the per-rank values recipe `env:` may use as `{launch.NAME}`.
"""

from __future__ import annotations

CLI_SETTING_KEYS: tuple[str, ...] = (
    "tensor_parallel",
    "pipeline_parallel",
    "gpu_memory_utilization",
    "max_model_len",
    "port",
    "served_model_name",
)

SPARKRUN_SETTING_KEYS: frozenset[str] = frozenset({*CLI_SETTING_KEYS, "host", "data_parallel"})

HOOK_LAUNCH_KEYS: tuple[str, ...] = (
    "head_host",
    "head_ip",
    "port",
    "cluster_id",
    "container_name",
    "cache_dir",
    "base_url",
)

LAUNCH_TOKEN_KEYS: tuple[str, ...] = ("node_rank", "node_host", "num_nodes", *HOOK_LAUNCH_KEYS, "model")
