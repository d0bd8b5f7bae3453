"""Job identity: ids, container names and labels.

A job id is derived from what was requested (recipe, effective settings, hosts), so the same launch gets the same id
on any control machine and in a dry-run. Containers carry labels (`sparkrun.job`, `sparkrun.rank`, ...) that hold
everything `status`, `logs` and `stop` need, so those commands work from a second machine or an empty config.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

LABEL = "sparkrun"
JOB_ID_RE = re.compile(r"^[0-9a-f]{12}$")


def job_id(identity: Mapping[str, Any]) -> str:
    """12 hex digits of a stable hash of what defines the job."""
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def container_name(job: str, role: str, rank: int) -> str:
    suffix = f"worker{rank}" if role == "worker" else role
    return f"sparkrun_{job}_{suffix}"


def labels(job: str, rank: int, role: str, meta: Mapping[str, Any]) -> dict[str, str]:
    out = {f"{LABEL}.job": job, f"{LABEL}.rank": str(rank), f"{LABEL}.role": role}
    for key, value in meta.items():
        if value is not None and value != "":
            out[f"{LABEL}.{key}"] = str(value)
    return out
