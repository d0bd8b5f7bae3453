"""The copy chain's shape (CX7 addresses first, a star through this machine without SSH between hosts), the SSH
command a hop uses (host key checked against the host's known name), the tracker of a chain's events, and how
progress looks on a pipe."""

from __future__ import annotations

import io
import json

import pytest

from sparkrun.core.events import Event, TransferFinished, TransferProgress
from sparkrun.distribution.chain import Tracker
from sparkrun.distribution.facts import HostHoldings
from sparkrun.distribution.route import candidates, hop_ssh, plan_route
from sparkrun.hosts import Host, SshSettings
from sparkrun.transport.ssh import SshTransport

A, B, C = Host("10.0.0.1"), Host("10.0.0.2"), Host("10.0.0.3")
FAST = {
    "10.0.0.1": HostHoldings("10.0.0.1", ib_addresses=("192.168.100.1",)),
    "10.0.0.2": HostHoldings("10.0.0.2", ib_addresses=("192.168.100.2",)),
    "10.0.0.3": HostHoldings("10.0.0.3"),
}


def test_a_link_tries_the_receivers_cx7_addresses_only_when_both_ends_have_cx7() -> None:
    assert candidates(FAST["10.0.0.1"], B, FAST) == ["192.168.100.2", "10.0.0.2"]
    assert candidates(FAST["10.0.0.3"], B, FAST) == ["10.0.0.2"]  # the sender has no CX7 port
    assert candidates(FAST["10.0.0.2"], C, FAST) == ["10.0.0.3"]  # the receiver has none


def test_the_route_records_the_network_each_link_uses() -> None:
    reached = {("10.0.0.1", "10.0.0.2"): "192.168.100.2", ("10.0.0.2", "10.0.0.3"): "10.0.0.3"}
    route = plan_route(A, [B, C], reached, FAST)
    assert not route.relay
    assert [route.describe(i) for i in range(2)] == ["from 10.0.0.1 over 192.168.100.2 (CX7)", "from 10.0.0.2"]
    assert route.text() == "10.0.0.1 -> 10.0.0.2 -> 10.0.0.3"


def test_one_link_without_ssh_makes_the_copy_go_through_this_machine() -> None:
    route = plan_route(A, [B, C], {("10.0.0.1", "10.0.0.2"): "10.0.0.2", ("10.0.0.2", "10.0.0.3"): None}, FAST)
    assert route.relay and [route.describe(i) for i in range(2)] == ["from 10.0.0.1 through this machine"] * 2
    from_here = plan_route(None, [B], {}, FAST)  # this machine reaches a host over its own connection
    assert not from_here.relay and from_here.describe(0) == "from this machine"


def test_a_hop_at_another_address_checks_the_host_key_of_the_hosts_known_name() -> None:
    transport = SshTransport()
    receiver = Host("10.0.0.2", SshSettings(user="ops", identity_file="/home/me/.ssh/key"))
    argv = hop_ssh(transport, A, receiver, "192.168.100.2")
    assert argv is not None and argv[-2:] == ["--", "192.168.100.2"]
    assert "HostKeyAlias=10.0.0.2" in argv and "-i" not in argv  # no key file of this machine on another host
    assert "HostKeyAlias=10.0.0.2" not in (hop_ssh(transport, A, receiver, "10.0.0.2") or [])


class Sized:
    item = "model org/m"

    def total(self, host: str) -> int:
        return 1000


def test_the_tracker_follows_each_hop_and_names_a_host_its_sender_could_not_reach() -> None:
    seen: list[Event] = []
    tracker = Tracker(Sized(), ["a", "b", "c"], seen.append)
    for line in [
        "@sr hop-start a 100",
        "@sr hop-progress a 500 500",
        "@sr hop-start b 200",
        "@sr hop-file a 1 done",
        "@sr hop-next b c 255 Timeout, server not responding.",
        "@sr hop-end a 1000 1000",
        "@sr hop-fail b write cannot write blob: 0 free",
        "not an event",
    ]:
        tracker.line(line)
    hops = tracker.hops
    assert (hops["a"].written, hops["a"].ended, hops["a"].files) == (1000, True, {1: "done"})
    assert hops["b"].error == "write cannot write blob: 0 free"
    assert hops["c"].lost == "b could not reach it: Timeout, server not responding."
    assert [h.host for h in tracker.orphans()] == ["b"]  # started, never ended: stopped after the copy
    assert [(e.host, e.done, e.total) for e in seen if isinstance(e, TransferProgress)] == [
        ("a", 500, 1000),
        ("a", 1000, 1000),
    ]


def test_on_a_pipe_progress_is_a_few_plain_lines_and_a_summary_per_host() -> None:
    from sparkrun.cli.transfer_view import TransferView

    out = io.StringIO()
    view = TransferView(out)
    for done in (0, 100, 200, 1000, 1000):
        view.progress(TransferProgress("a", "model org/m", done, 1000))
    view.finished(TransferFinished("a", "model org/m", 1000, 0, 2.0, "from this machine"))
    view.finished(TransferFinished("b", "model org/m", 0, 1000, 0.1, "already complete"))
    view.finished(TransferFinished("c", "model org/m", 0, 0, 1.0, "", error="unreachable"))
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("a: model org/m: 0 B / 1.00 KB (0%)")
    assert lines[1].startswith("a: model org/m: 1.00 KB / 1.00 KB (100%)")  # the end, once; nothing in between
    assert lines[2:] == [
        "a: model org/m: 1.00 KB in 2.0s (from this machine)",
        "b: model org/m: nothing to copy (already complete)",
        "c: model org/m: FAILED: unreachable",
    ]


def test_json_progress_lines_are_throttled_per_host_but_keep_the_first_and_the_last(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sparkrun.cli.console import Console

    console = Console()
    console.json_events = True
    for done in range(0, 1001, 10):  # 101 progress events in far less than the interval
        console.render(TransferProgress("a", "model org/m", done, 1000))
    console.render(TransferProgress("b", "model org/m", 5, 1000))
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(e["host"], e["done"]) for e in lines] == [("a", 0), ("a", 1000), ("b", 5)]
