"""Model sync: every host's Hugging Face cache ends up holding the manifest's files (hub layout, links, refs).

1. Probe every host (sync_probe.sh): which files are present (sha256-checked where the Hub gives one; a file whose
   checksum marker still matches is not hashed again), unfinished, corrupt or missing.
2. Pick a source: a host that holds the whole model (the head first), else this machine's own cache when complete,
   else download once: on this machine (huggingface_hub) or on the head (curl), see `spec.download_mode`.
3. Copy down the route (route.py, chain.py): only files some host needs, each from the first byte any of them lacks
   (an unfinished copy resumes); every hop keeps what it needs and forwards the rest.
4. Probe the receivers again (links and refs are made, checksums checked). A host that dropped out is reported and
   routed around: the next pass copies to the others from a host (or this machine) that now has the files.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from sparkrun.core.events import Warning
from sparkrun.distribution.chain import Tracker, run_copy
from sparkrun.distribution.facts import Context, HostHoldings
from sparkrun.distribution.fetch import Source, copy_timeout, download, file_table, find_source, recv_table
from sparkrun.distribution.report import ItemReport
from sparkrun.distribution.route import MESH_HINT, Route, plan_route, reach_plan
from sparkrun.distribution.spec import missing_error
from sparkrun.errors import HostError
from sparkrun.hosts import Host
from sparkrun.models.check import check_cache
from sparkrun.models.layout import default_hub_dir
from sparkrun.models.manifest import ModelManifest
from sparkrun.shell import ParamValue

MAX_PASSES = 3
CHUNK = 32 << 20


@dataclass(frozen=True)
class ModelPayload:
    """A model copy: the shared file table, what each receiver wants, where the stream starts for each file."""

    context: Context
    manifest: ModelManifest
    wants: Mapping[str, frozenset[str]]  # receiver -> paths
    send: tuple[tuple[int, int], ...]  # (file index, first byte)
    totals: Mapping[str, int]  # receiver -> bytes it will write
    source_hub: str
    item: str
    timeout: float

    send_name: ClassVar[str] = "model_send"
    recv_name: ClassVar[str] = "model_recv"

    def send_values(self) -> dict[str, ParamValue]:
        return {
            "HUB_DIR": self.source_hub,
            "COMMIT": self.manifest.commit,
            **file_table(self.manifest),
            "SEND_IDX": [str(i) for i, _ in self.send],
            "SEND_FROM": [str(o) for _, o in self.send],
            "CHUNK": str(CHUNK),
        }

    def recv_values(self, host: Host) -> dict[str, ParamValue]:
        wanted = self.wants.get(host.address, frozenset())
        return {**recv_table(self.context.spec, self.manifest, wanted), "FILE_URLS": []}

    def total(self, host: str) -> int:
        return self.totals.get(host, 0)


def build_payload(
    context: Context,
    manifest: ModelManifest,
    holdings: Mapping[str, HostHoldings],
    receivers: Sequence[Host],
    source_hub: str,
) -> ModelPayload:
    wants = {h.address: frozenset(holdings[h.address].wants()) for h in receivers}
    send = []
    for index, entry in enumerate(manifest.files):
        takers = [h.address for h in receivers if entry.path in wants[h.address]]
        if takers:
            send.append((index, min(holdings[h].resume_from(entry.path) for h in takers)))
    totals = {h.address: holdings[h.address].bytes_wanted(manifest) for h in receivers}
    stream_bytes = sum(manifest.files[i].size - start for i, start in send)
    item = f"model {manifest.repo_id}"
    return ModelPayload(context, manifest, wants, tuple(send), totals, source_hub, item, copy_timeout(stream_bytes))


# ---- the passes --------------------------------------------------------------------------------------------------


def _receivers(
    context: Context, manifest: ModelManifest, holdings: Mapping[str, HostHoldings], failed: dict[str, str]
) -> list[Host]:
    """Hosts that still need files and can take them (a host without the space is failed here, before any copy)."""
    out = []
    for host in context.spec.hosts:
        held = holdings.get(host.address)
        if held is None or host.address in failed or not held.wants():
            continue
        need = held.bytes_wanted(manifest)
        if held.free_bytes is not None and held.free_bytes < need:
            failed[host.address] = (
                f"not enough space in {context.spec.hub_dir}: {need / 1e9:.2f} GB needed, "
                f"{held.free_bytes / 1e9:.2f} GB free (`sparkrun model-cache prune` frees some)"
            )
            continue
        out.append(host)
    return out


def choose_route(
    context: Context, source: Host | None, receivers: Sequence[Host], holdings: Mapping[str, HostHoldings]
) -> Route:
    plan = reach_plan(context.transport, source, receivers, holdings)
    reached: dict[tuple[str, str], str | None] | None = None
    if plan is not None:
        reached = {}
        for step, result in context.run(plan):
            target = str(step.values["TARGET"])
            reached[(step.host.address, target)] = result.output.last("reach") if result.ok else None
    route = plan_route(source, receivers, reached, holdings)
    if route.relay and (source is not None or len(receivers) > 1):
        context.emit(Warning(MESH_HINT))
    return route


def _check_source(source: Source, manifest: ModelManifest, tracker: Tracker) -> None:
    """Every receiver rejected a file: the source's copy of it is corrupt (retrying would loop)."""
    for index, item in enumerate(manifest.files):
        states = [h.files.get(index) for h in tracker.hops.values() if index in h.files]
        if states and all(s == "bad" for s in states):
            where = "this machine's Hugging Face cache" if source.host is None else f"{source.name}'s cache"
            raise HostError(
                source.name,
                "model copy",
                f"{item.path}: the copy in {where} does not match the Hub's checksum",
                hint="delete that copy (`sparkrun model-cache delete` on a host) and sync again",
            )


def _record(report: ItemReport, route: Route, tracker: Tracker, failed: dict[str, str]) -> None:
    for index, link in enumerate(route.hops):
        hop = tracker.hops[link.host.address]
        outcome = report.outcome(link.host.address)
        outcome.moved += hop.written
        outcome.received += hop.received
        outcome.route = route.describe(index)
        if hop.error:
            failed[hop.host] = hop.error
    if tracker.source_error and route.source is not None:
        failed.setdefault(route.source.address, f"sending: {tracker.source_error}")


def sync_model(
    context: Context, manifest: ModelManifest, probed: Mapping[str, HostHoldings] | None = None
) -> ItemReport:
    """Make every host hold the manifest's files (module docstring); failures are in the report, per host.
    `probed`: the hosts' holdings when a probe just ran."""
    spec = context.spec
    report = ItemReport(f"model {manifest.repo_id}", manifest.total_bytes)
    started = time.monotonic()
    holdings = dict(probed) if probed is not None else context.probe()
    failed = {h: x.error for h, x in holdings.items() if x.error}
    before = {h: x.bytes_wanted(manifest) for h, x in holdings.items() if not x.error}
    source: Source | None = None
    for _ in range(MAX_PASSES):
        receivers = _receivers(context, manifest, holdings, failed)
        if not receivers:
            break
        # each pass starts from a complete copy on a host if there is one (after a lost host: one that now has it)
        source = find_source(context, manifest, holdings, failed) or _fresh(context, manifest, holdings, report)
        if source.host is not None and source.downloaded:
            holdings.update(context.probe([source.host]))
            receivers = [h for h in receivers if h.address != source.name]
            report.outcome(source.name).moved += source.downloaded
            report.outcome(source.name).route = "downloaded from the Hub"
        report.source, report.downloaded = source.name, report.downloaded + source.downloaded
        source.downloaded = 0
        if not receivers:
            break
        route = choose_route(context, source.host, receivers, holdings)
        payload = build_payload(context, manifest, holdings, receivers, source.hub_dir)
        tracker = run_copy(payload, route, context.transport, context.emit)
        _record(report, route, tracker, failed)
        _check_source(source, manifest, tracker)
        for host, held in context.probe(receivers).items():
            holdings[host] = held
            if held.error:
                failed.setdefault(host, held.error)
    _finish(report, spec.hosts, holdings, failed, before, manifest, time.monotonic() - started)
    return report


def _fresh(
    context: Context, manifest: ModelManifest, holdings: Mapping[str, HostHoldings], report: ItemReport
) -> Source:
    """No complete copy anywhere (or none left: the host that had it dropped out): download, never with --offline
    and never twice in one sync."""
    spec = context.spec
    if spec.offline:
        here = set(check_cache(default_hub_dir(), manifest).to_fetch)
        held = [h for h in holdings.values() if h.check is not None]
        nowhere = [f.path for f in manifest.files if f.path in here and all(f.path in h.wants() for h in held)]
        raise missing_error(manifest, [h.address for h in spec.hosts], nowhere)
    if report.downloaded:
        raise HostError(report.source, "model copy", "lost the only complete copy of the model (downloaded once)")
    return download(context, manifest, holdings)


def _finish(
    report: ItemReport,
    hosts: Sequence[Host],
    holdings: Mapping[str, HostHoldings],
    failed: Mapping[str, str],
    before: Mapping[str, int],
    manifest: ModelManifest,
    seconds: float,
) -> None:
    for host in hosts:
        outcome = report.outcome(host.address)
        held = holdings.get(host.address)
        outcome.seconds = seconds
        if host.address in failed:
            outcome.error = failed[host.address]
        elif held is None or not held.model_complete:
            outcome.error = f"still incomplete after {MAX_PASSES} copies: {', '.join(held.wants() if held else ())}"
        outcome.skipped = manifest.total_bytes - before.get(host.address, manifest.total_bytes)
        if not outcome.route and not outcome.error and not before.get(host.address):
            outcome.route = "already complete"
