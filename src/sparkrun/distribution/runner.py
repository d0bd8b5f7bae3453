"""The whole sync, as `run` and `sync` use it: images, then the model, each host reported; and the steps a dry-run
shows for it (no connection: the model's file list from sparkrun's metadata cache only).

`run` calls `distribute_job` between its probe checks and the launch: the memory estimate is checked first (a plan
that cannot fit is refused unless --force), then every host gets the image and the model; the launch request comes
back with `hub_offline` set when the model is on every host, so the containers run with HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sparkrun.clusters import download_mode
from sparkrun.core.events import Emit, MemoryEstimate, Warning
from sparkrun.core.plan import Plan, Step
from sparkrun.distribution.facts import Context, HostHoldings, probe_plan
from sparkrun.distribution.image import sync_image
from sparkrun.distribution.memory import MemoryCheck, check_job, refuse_unless_fits
from sparkrun.distribution.model import sync_model
from sparkrun.distribution.report import SyncReport
from sparkrun.distribution.spec import ImageNeed, SyncSpec, hub_offline_env, model_need
from sparkrun.errors import HostError
from sparkrun.launch.facts import HostFacts
from sparkrun.launch.planner import DEFAULT_HF_CACHE, JobPlan, plan_job
from sparkrun.launch.request import LaunchRequest, RecipeInput
from sparkrun.transport.base import Transport


@dataclass(frozen=True)
class JobSync:
    job: JobPlan  # planned again: containers get HF_HUB_OFFLINE=1 when the model is on every host
    facts: dict[str, HostFacts]  # the image now present everywhere
    report: SyncReport | None = None  # None: --no-sync
    memory: MemoryCheck | None = None

    def to_json(self) -> dict[str, Any]:
        if self.report is None:
            return {}
        return {**self.report.to_json(), "memory": self.memory.to_json() if self.memory else None}


def job_spec(job: JobPlan, lr: LaunchRequest, *, dry_run: bool, verify: bool = False) -> SyncSpec:
    offline = lr.pull == "never"
    return SyncSpec(
        hosts=tuple(job.hosts),
        hf_cache=job.hf_cache,
        model=model_need(lr.model_request, offline=offline, dry_run=dry_run, strict=False),
        image=ImageNeed(job.image, job.image_fallback),
        download=lr.selection.cluster.download,
        offline=offline,
        verify=verify,
        job=job.job,
    )


def _from_facts(facts: Mapping[str, HostFacts]) -> dict[str, HostHoldings]:
    return {h: HostHoldings(h, images=dict(f.images), docker=f.docker) for h, f in facts.items()}


def sync(spec: SyncSpec, transport: Transport, emit: Emit, known: Mapping[str, HostFacts] | None = None) -> SyncReport:
    """Image, then model, on every host of `spec` (`known`: the run's probe, so images need no second look)."""
    context = Context(spec, transport, emit)
    report = SyncReport()
    manifest = spec.model.manifest if spec.model is not None else None
    if spec.model is not None and manifest is None:
        message = f"{spec.model.label} is not synced: {spec.model.unknown}; the engine must find it on the hosts"
        emit(Warning(message))
        report.notes.append(message)
    holdings = context.probe() if manifest is not None or known is None else _from_facts(known)
    if spec.image is not None:
        report.items.append(sync_image(context, spec.image, holdings))
        report.items[-1].announce(emit)
    if manifest is not None:
        item = sync_model(context, manifest, holdings)
        report.items.append(item)
        item.announce(emit)
        report.hf_hub_offline = not item.failed
    return report


def _with_images(facts: Mapping[str, HostFacts], spec: SyncSpec, report: SyncReport) -> dict[str, HostFacts]:
    """The run's facts, with the distributed image present where the sync put it."""
    image = next((i for i in report.items if i.item.startswith("image ")), None)
    if image is None:
        return dict(facts)
    name = image.item.removeprefix("image ")
    out = {}
    for host, f in facts.items():
        out[host] = f if f.images.get(name) else dataclasses.replace(f, images={**f.images, name: "synced"})
    return out


def distribute_job(
    job: JobPlan,
    lr: LaunchRequest,
    facts: Mapping[str, HostFacts],
    *,
    transport: Transport,
    emit: Emit,
    given: RecipeInput,
) -> JobSync:
    """Check memory, then put the image and the model on every host of the job (see the module docstring); with
    `--no-sync` (`given.sync` false) only the memory check, from cached metadata."""
    spec = job_spec(job, lr, dry_run=not given.sync)
    manifest = spec.model.manifest if spec.model else None
    memory = check_job(job, lr, manifest, offline=spec.offline or hub_offline_env() or not given.sync)
    emit(MemoryEstimate(memory.text(), memory.fits, memory.to_json()))
    refuse_unless_fits(memory, force=given.force)
    if not given.sync:
        return JobSync(job, dict(facts), None, memory)
    report = sync(spec, transport, emit, facts)
    if report.failed:
        host, cause = next(iter(report.failed.items()))
        others = [f"{h}: {c}" for h, c in list(report.failed.items())[1:]]
        raise HostError(host, "sync", cause, detail="\n".join(others) or None, hint=_hint(cause))
    offline = report.hf_hub_offline or (spec.offline and spec.model is not None)
    facts = _with_images(facts, spec, report)
    return JobSync(plan_job(dataclasses.replace(lr, hub_offline=offline), facts), facts, report, memory)


def sync_request(
    lr: LaunchRequest,
    *,
    transport: Transport,
    emit: Emit,
    download: str | None = None,
    verify: bool = False,
    dry_run: bool = False,
) -> SyncReport:
    """`sparkrun sync`: the recipe's model and image onto every selected host (all of them, not only tp x pp)."""
    cluster = lr.selection.cluster
    offline = lr.pull == "never"
    spec = SyncSpec(
        hosts=lr.selection.hosts,
        hf_cache=cluster.hf_cache or DEFAULT_HF_CACHE,
        model=model_need(lr.model_request, offline=offline, dry_run=dry_run),
        image=ImageNeed(lr.request.image, lr.runtime.fallback_image(lr.request.image)),
        download=download_mode(download) if download else cluster.download,
        offline=offline,
        verify=verify,
    )
    if dry_run:
        plan, notes = dry_run_plan(spec)
        return SyncReport(notes=notes, plan=plan)
    report = sync(spec, transport, emit)
    report.hosts = len(spec.hosts)
    return report


def _hint(cause: str) -> str:
    if "space" in cause:
        return "free space (`sparkrun model-cache prune`) and sync again"
    return "check the host (`sparkrun setup check`), then sync again: only what is missing moves"


# ---- the dry-run --------------------------------------------------------------------------------------------------


def dry_run_job(job: JobPlan, lr: LaunchRequest) -> tuple[JobPlan, Plan, list[str], dict[str, object]]:
    """For `run --dry-run`: the job as the run would plan it, the sync steps, notes, and the needs as data."""
    spec = job_spec(job, lr, dry_run=True)
    plan, notes = dry_run_plan(spec)
    manifest = spec.model.manifest if spec.model is not None else None
    memory = check_job(job, lr, manifest, offline=True)
    notes.append(memory.text())
    # what the run will do: sync a known model; resolve an uncached one online first (unless nothing may go online)
    synced = spec.model is not None and (manifest is not None or spec.offline or not hub_offline_env())
    data: dict[str, object] = {
        "model": spec.model.to_json() if spec.model is not None else None,
        "image": spec.image.to_json() if spec.image is not None else None,
        "download": spec.download,
        "memory": memory.to_json(),
    }
    return plan_job(dataclasses.replace(lr, hub_offline=synced)), plan, notes, data


def dry_run_plan(spec: SyncSpec) -> tuple[Plan, list[str]]:
    """The sync steps a run would take (decided from facts at run time) and what the job needs, for `--dry-run`."""
    notes = []
    steps = list(probe_plan(spec).steps)
    head = spec.head
    manifest = spec.model.manifest if spec.model is not None else None
    if spec.image is not None:
        what = f"image {spec.image.ref}: compare image ids; hosts that lack it get it (docker save | load down a chain;"
        steps.append(Step(head, "image_send", {}, what + " the head pulls it once if no host has it)", "sync: image"))
        notes.append(f"image: {spec.image.ref}" + (f" (pinned: {spec.image.digest})" if spec.image.digest else ""))
    if spec.model is None:
        return Plan(tuple(steps)), notes
    if manifest is None and (spec.offline or hub_offline_env()):
        notes.append(f"{spec.model.label}: not synced: {spec.model.unknown}")
        notes += ["--offline: containers get HF_HUB_OFFLINE=1"] if spec.offline else []
        return Plan(tuple(steps)), notes
    where = {"head": f"{head.address} (curl)", "control": "this machine (huggingface_hub)"}.get(
        spec.download, f"{head.address} if it reaches the Hub, else this machine"
    )
    get = f"if no host (nor this machine) holds the whole model: download it once on {where}"
    steps.append(Step(head, "model_recv", {}, get, "sync: model"))
    chain = " -> ".join(h.address for h in spec.hosts)
    copy = f"copy missing or unfinished files down the chain {chain} (CX7 addresses when both ends have one)"
    steps.append(Step(head, "model_send", {}, copy, "sync: model"))
    if manifest is None:
        notes.append(
            f"{spec.model.label}: its file list is not cached here (a dry-run asks the Hub nothing): a real run "
            "fetches it first; `sparkrun recipe vram RECIPE` or `sparkrun sync RECIPE` caches it"
        )
    else:
        notes.append(
            f"model: {manifest.repo_id} @ {manifest.commit} ({manifest.revision}): {len(manifest.files)} files, "
            f"{manifest.total_bytes / 1e9:.2f} GB"
        )
    notes.append("containers get HF_HUB_OFFLINE=1 (the model is in every host's cache before they start)")
    return Plan(tuple(steps)), notes
