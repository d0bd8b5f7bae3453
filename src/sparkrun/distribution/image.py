"""Image sync: every host ends up with the image the job runs, with the same image id.

- Image ids are compared per host. The reference copy is the head's (else the first host's that has it); hosts that
  lack the image, or hold a different image under the same name, get the reference copy by `docker save | docker
  load` down a chain (route.py) from a host that has it. An image present with the right id is never pulled again.
- When no host has it: the head pulls it once from its registry (it becomes the chain's source) unless --offline.
  When a runtime has a prebuilt twin (`image_fallback`) on some host and the image itself is nowhere, the twin is
  copied instead (the launch tags it with the image's name).
- An image pinned by digest (`name@sha256:...`): a host has it when its repo digests include that digest. `docker
  load` cannot restore a digest reference, so each host that lacks it pulls it by digest itself (only those hosts).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from sparkrun.core.plan import Plan, Step
from sparkrun.distribution.chain import NextHop, run_copy
from sparkrun.distribution.facts import Context, HostHoldings
from sparkrun.distribution.model import choose_route
from sparkrun.distribution.report import ItemReport
from sparkrun.distribution.spec import ImageNeed
from sparkrun.hosts import Host
from sparkrun.shell import ParamValue

PULL_TIMEOUT_S = 3600.0
IMAGE_COPY_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class ImagePayload:
    image: str
    expect_id: str  # "" when the source pulls it first (the id is known only then)
    pull: bool
    size: int
    item: str
    timeout: float = IMAGE_COPY_TIMEOUT_S

    send_name: ClassVar[str] = "image_send"
    recv_name: ClassVar[str] = "image_recv"

    def send_values(self) -> dict[str, ParamValue]:
        return {"IMAGE": self.image, "PULL": self.pull}

    def recv_values(self, host: Host) -> dict[str, ParamValue]:
        return {"IMAGE": self.image, "EXPECT_ID": self.expect_id}

    def total(self, host: str) -> int:
        return self.size


def image_ids(holdings: Mapping[str, HostHoldings], name: str) -> dict[str, str | None]:
    return {h: x.images.get(name) for h, x in holdings.items() if not x.error}


def _target(need: ImageNeed, holdings: Mapping[str, HostHoldings], report: ItemReport) -> str:
    """The image to distribute: the job's, or the runtime's prebuilt twin when only that exists somewhere."""
    if any(image_ids(holdings, need.ref).values()) or not need.fallback:
        return need.ref
    if any(image_ids(holdings, need.fallback).values()):
        report.notes.append(f"{need.ref} is on no host: copying {need.fallback} (the launch tags it {need.ref})")
        return need.fallback
    return need.ref


def _pull_each(context: Context, image: str, hosts: Sequence[Host], report: ItemReport) -> None:
    """A digest-pinned image: each host that lacks it pulls it (docker load cannot restore a digest reference)."""
    values = {"MODE": "pull", "IMAGE": image, "EXPECT_ID": "", "SKIP_BYTES": "0", **NextHop().values()}
    summary = "pull {host}: " + image
    steps = tuple(
        Step(
            h,
            "image_recv",
            {**values, "NAME": h.address},
            summary.format(host=h.address),
            "sync: image pull",
            timeout=PULL_TIMEOUT_S,
        )
        for h in hosts
    )
    for step, result in context.run(Plan(steps)):
        outcome = report.outcome(step.host.address)
        fail = result.output.last("hop-fail")
        outcome.route = "pulled by digest"
        if fail or not result.ok:
            outcome.error = fail.split(" ", 2)[-1] if fail else result.failure()[1]


def _reference(hosts: Sequence[Host], ids: Mapping[str, str | None]) -> Host | None:
    return next((h for h in hosts if ids.get(h.address)), None)


def sync_image(context: Context, need: ImageNeed, holdings: Mapping[str, HostHoldings]) -> ItemReport:
    """Make every reachable host hold the job's image with one id (module docstring)."""
    started = time.monotonic()
    report = ItemReport(f"image {need.ref}")
    failed = {h: x.error for h, x in holdings.items() if x.error}
    hosts = [h for h in context.spec.hosts if h.address not in failed]
    image = _target(need, holdings, report)
    report.item = f"image {image}"
    ids = image_ids(holdings, image)
    source = _reference(hosts, ids)
    reference = ids.get(source.address) if source is not None else None
    receivers = [h for h in hosts if ids.get(h.address) != reference or reference is None]
    for member in hosts:
        if member not in receivers:
            report.outcome(member.address).route = "already has it"
    if "@sha256:" in image and receivers:
        _pull_each(context, image, receivers, report)
    elif receivers:
        _copy(context, image, source, reference, receivers, holdings, report)
    for name, error in failed.items():
        report.outcome(name).error = error
    for outcome in report.hosts.values():
        outcome.seconds = time.monotonic() - started
    return report


def _copy(
    context: Context,
    image: str,
    source: Host | None,
    reference: str | None,
    receivers: list[Host],
    holdings: Mapping[str, HostHoldings],
    report: ItemReport,
) -> None:
    pull = source is None
    if pull and context.spec.offline:
        for host in receivers:
            report.outcome(host.address).error = f"{image} is on no host and --offline pulls nothing"
        return
    if source is None:  # the head pulls it once, then sends it on
        source = receivers.pop(0)
        report.outcome(source.address).route = "pulled from its registry"
    size = holdings[source.address].image_sizes.get(image, 0) if source.address in holdings else 0
    payload = ImagePayload(image, reference or "", pull, size, f"image {image}")
    report.source = source.address
    if not receivers:  # only the head needed it
        _pull_each(context, image, [source], report)
        return
    route = choose_route(context, source, receivers, holdings)
    tracker = run_copy(payload, route, context.transport, context.emit)
    for index, link in enumerate(route.hops):
        hop = tracker.hops[link.host.address]
        outcome = report.outcome(link.host.address)
        outcome.moved, outcome.received, outcome.route = hop.written, hop.received, route.describe(index)
        outcome.error = hop.error or hop.lost or (None if hop.ended else "the copy did not finish")
    if tracker.source_error:
        report.outcome(source.address).error = tracker.source_error
        for link in route.hops:
            report.outcome(link.host.address).error = report.outcome(link.host.address).error or "no image sent"
