"""What each host holds, from one `sync_probe.sh` per host: the model's files (model_check.sh's states, partial
copies), free space at the cache, the images' ids and digests, curl, and the host's CX7 (RDMA) addresses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sparkrun.core.apply import run_phase
from sparkrun.core.events import Emit, PhaseStarted, StepFinished
from sparkrun.core.plan import Plan, Step
from sparkrun.distribution.spec import PARTIAL_SUFFIX, SyncSpec
from sparkrun.hosts import Host
from sparkrun.models.check import CacheCheck, FileState, check_script_params, parse_check_events
from sparkrun.models.manifest import ModelManifest
from sparkrun.runtimes.network import ib_addresses, parse_ib_detect_output
from sparkrun.shell import ParamValue, script_text
from sparkrun.transport.base import Result, Transport

PROBE_TIMEOUT_S = 900.0  # hashing a large model for the first time takes a while


@dataclass(frozen=True)
class HostHoldings:
    host: str
    check: CacheCheck | None = None  # the model's files (None: no model, or the host did not answer)
    partial: Mapping[str, int] = field(default_factory=dict)  # path -> bytes of an unfinished copy
    free_bytes: int | None = None
    curl: bool = False
    docker: str = ""
    images: Mapping[str, str | None] = field(default_factory=dict)  # name -> id (None: absent)
    digests: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # name -> repo digests
    image_sizes: Mapping[str, int] = field(default_factory=dict)  # name -> bytes (as docker reports them)
    ib_addresses: tuple[str, ...] = ()
    error: str | None = None  # the probe failed (host unreachable, ...)

    @property
    def model_complete(self) -> bool:
        return self.check is not None and self.check.complete

    def wants(self) -> tuple[str, ...]:
        """Model files this host needs content for (missing, unfinished or corrupt)."""
        return self.check.to_fetch if self.check is not None else ()

    def resume_from(self, path: str) -> int:
        """Where a copy of `path` continues on this host: its partial copy's size (0 for a corrupt file)."""
        if self.check is None:
            return 0
        state = next((f.state for f in self.check.files if f.path == path), FileState.MISSING)
        return self.partial.get(path, 0) if state is FileState.MISSING else 0

    def bytes_wanted(self, manifest: ModelManifest) -> int:
        return sum(f.size - self.resume_from(f.path) for f in manifest.files if f.path in self.wants())


def probe_values(spec: SyncSpec, *, multi: bool) -> dict[str, ParamValue]:
    values: dict[str, ParamValue] = {
        "MODEL_CHECK": "",
        "STATE_DIR": spec.state_dir,
        "JOB_ID": spec.job,
        "IMAGES": [],
        "IB_DETECT": script_text("ib_detect.sh") if multi else "",
        "HEAD_ADDRESS": spec.head.address,
    }
    manifest = spec.model.manifest if spec.model is not None else None
    if manifest is not None:
        values.update(check_script_params(manifest, spec.hub_dir, verify=True, fix_links=True))
        values["MODEL_CHECK"] = script_text("model_check.sh")
        values["VERIFIED_DIR"] = "" if spec.verify else spec.state_dir + "/verified"
        values["PARTIAL_SUFFIX"] = PARTIAL_SUFFIX
    if spec.image is not None:
        values["IMAGES"] = [spec.image.ref] + ([spec.image.fallback] if spec.image.fallback else [])
    return values


def probe_plan(spec: SyncSpec, hosts: Sequence[Host] | None = None) -> Plan:
    """One sync_probe.sh per host, in parallel: what it holds; links and refs of complete blobs are repaired."""
    targets = tuple(hosts if hosts is not None else spec.hosts)
    values = probe_values(spec, multi=len(spec.hosts) > 1)
    what = []
    if spec.model is not None and spec.model.manifest is not None:
        m = spec.model.manifest
        what.append(f"{m.repo_id}@{m.commit[:12]} ({len(m.files)} files, {m.total_bytes / 1e9:.2f} GB)")
    if spec.image is not None:
        what.append(f"image {spec.image.ref}")
    summary = "check {host}: " + ", ".join(what or ["network"])
    steps = tuple(
        Step(h, "sync_probe", values, summary.format(host=h.address), "sync: check", timeout=PROBE_TIMEOUT_S)
        for h in targets
    )
    return Plan(steps)


def parse_holdings(host: str, result: Result, manifest: ModelManifest | None) -> HostHoldings:
    if not result.ok:
        return HostHoldings(host, error=result.failure()[1])
    out = result.output
    check = parse_check_events(manifest, out.events) if manifest is not None else None
    partial = {}
    for item in out.all("model-partial"):
        size, _, path = item.partition(" ")
        partial[path] = int(size) if size.isdigit() else 0
    images: dict[str, str | None] = {}
    digests: dict[str, tuple[str, ...]] = {}
    sizes: dict[str, int] = {}
    for item in out.all("image"):
        name, ident, size, found = [*item.split(" "), "", "", ""][:4]
        images[name] = None if ident in {"", "-"} else ident
        digests[name] = tuple(d for d in found.split(",") if d and d != "-")
        sizes[name] = int(size) if size.isdigit() else 0
    free = out.last("free_kb")
    return HostHoldings(
        host=host,
        check=check,
        partial=partial,
        free_bytes=int(free) * 1024 if free and free.isdigit() else None,
        curl=out.last("curl") == "yes",
        docker=out.last("docker") or "",
        images=images,
        digests=digests,
        image_sizes=sizes,
        ib_addresses=_ib(out.all("ib_env")),
    )


def _ib(lines: list[str]) -> tuple[str, ...]:
    try:
        return ib_addresses(parse_ib_detect_output("\n".join(lines)))
    except ValueError:
        return ()


@dataclass
class Context:
    """One sync's spec, transport and event sink; `probe` asks the hosts what they hold."""

    spec: SyncSpec
    transport: Transport
    emit: Emit

    def run(self, plan: Plan) -> list[tuple[Step, Result]]:
        """Every step of `plan` (one phase), in parallel; a failed step is a fact to report, not an abort."""
        steps = list(plan.steps)
        if not steps:
            return []
        self.emit(PhaseStarted(steps[0].phase, tuple(steps)))
        results = run_phase(self.transport, steps, self.emit)
        for step, result in zip(steps, results, strict=True):
            self.emit(StepFinished(step, result))
        return list(zip(steps, results, strict=True))

    def probe(self, hosts: Sequence[Host] | None = None) -> dict[str, HostHoldings]:
        manifest = self.spec.model.manifest if self.spec.model is not None else None
        found = self.run(probe_plan(self.spec, hosts))
        return {step.host.address: parse_holdings(step.host.address, result, manifest) for step, result in found}
