"""Does the job fit? The per-host VRAM estimate of `models.vram` for a planned job: the runtime, its resolved settings
and the API rank's serve argv (a `--kv-cache-dtype` written into `command:` counts), tensor/pipeline parallelism, and
the model's manifest (weights from safetensors headers or GGUF sizes, architecture from config.json or GGUF
metadata). Offline (a dry-run, --offline) only cached metadata is used; without it the estimate is skipped, with
the reason. `run` refuses a plan whose estimate does not fit unless `--force`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sparkrun.distribution.spec import hub_offline_env, model_need
from sparkrun.errors import Refused, SparkrunError
from sparkrun.launch.planner import JobPlan, plan_job
from sparkrun.launch.request import LaunchRequest
from sparkrun.models.manifest import ModelManifest
from sparkrun.models.memory import estimate_for_manifest
from sparkrun.models.vram import VramEstimate
from sparkrun.models.vram_inputs import vram_request_from_settings


@dataclass(frozen=True)
class MemoryCheck:
    estimate: VramEstimate | None
    reason: str = ""  # why there is no estimate

    @property
    def fits(self) -> bool | None:
        return None if self.estimate is None else self.estimate.fits

    def text(self) -> str:
        if self.estimate is None:
            return f"memory estimate: not available ({self.reason})"
        return self.estimate.table()

    def to_json(self) -> dict[str, Any]:
        if self.estimate is None:
            return {"available": False, "reason": self.reason}
        return {"available": True, **self.estimate.to_json()}


def estimate_job(
    runtime: str,
    settings: Mapping[str, Any],
    argv: tuple[str, ...],
    nodes: int,
    manifest: ModelManifest | None,
    metadata: Mapping[str, Any],
    *,
    offline: bool,
) -> MemoryCheck:
    """The estimate for a model served with these settings on `nodes` hosts (never raises: a reason instead)."""
    if manifest is None:
        return MemoryCheck(None, "the model's file list is not known here")
    request = vram_request_from_settings(runtime, settings, argv, nodes=nodes if runtime.startswith("llama") else None)
    try:
        return MemoryCheck(estimate_for_manifest(manifest, request, offline=offline, recipe_metadata=metadata))
    except SparkrunError as exc:
        return MemoryCheck(None, exc.message)


def check_job(job: JobPlan, lr: LaunchRequest, manifest: ModelManifest | None, *, offline: bool) -> MemoryCheck:
    return estimate_job(
        job.runtime,
        lr.request.settings,
        tuple(job.api_rank.spec.argv),
        job.topology.num_nodes,
        manifest,
        lr.model_metadata,
        offline=offline,
    )


def check_request(lr: LaunchRequest, offline: bool = False) -> MemoryCheck:
    """`recipe vram` / `show`: the estimate for a launch request (the model's file list from the Hub unless offline,
    --offline or HF_HUB_OFFLINE)."""
    offline = offline or lr.pull == "never" or hub_offline_env()
    need = model_need(lr.model_request, offline=offline, dry_run=False)
    return check_job(plan_job(lr), lr, need.manifest if need else None, offline=offline)


def refuse_unless_fits(check: MemoryCheck, *, force: bool) -> None:
    est = check.estimate
    if est is None or est.fits or force:
        return
    over = (est.required_bytes - est.budget_bytes) / 1024**3
    raise Refused(
        f"{est.model} needs about {est.required_bytes / 1024**3:.1f} GiB per host, {over:.1f} GiB more than the "
        f"{est.budget_bytes / 1024**3:.1f} GiB budget ({est.hosts} host(s), max_model_len {est.max_model_len})",
        detail=est.table(),
        hint="use more hosts (--tp), a smaller --max-model-len or an fp8 KV cache; --force runs it anyway",
    )
