#!/usr/bin/env python3
"""nfq_delay.py QUEUE DELAY_MS [PIDFILE] - a fixed packet delay without sch_netem (stdlib only).

The kernels this testbed runs on may lack netem (CONFIG_NET_SCH_NETEM), so `testbed.sh delay` sends a host's
egress through an iptables NFQUEUE rule in that host's netns, and this process holds every queued packet for
DELAY_MS before it issues NF_ACCEPT. It talks nfnetlink_queue over a raw AF_NETLINK socket (metadata only, no
payload copy) and must run inside the host's network namespace. PIDFILE is written once the queue is bound, so
its existence means "ready". The queue is fail-open: if this process falls behind, packets pass undelayed.
"""

from __future__ import annotations

import heapq
import os
import select
import signal
import socket
import struct
import sys
import time
from types import FrameType

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_GSO = 1, 4
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NF_ACCEPT = 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
SO_RCVBUFFORCE = 33


def attr(atype: int, payload: bytes) -> bytes:
    ln = 4 + len(payload)
    return struct.pack("=HH", ln, atype) + payload + b"\0" * ((4 - ln % 4) % 4)


def msg(mtype: int, queue: int, attrs: list[bytes], flags: int = NLM_F_REQUEST, seq: int = 0) -> bytes:
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | mtype, flags, seq, 0) + body


def bind_queue(s: socket.socket, queue: int) -> None:
    flags = NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO
    ack = NLM_F_REQUEST | NLM_F_ACK
    cfg = [
        msg(
            NFQNL_MSG_CONFIG, queue, [attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, socket.AF_INET))], ack
        ),
        msg(NFQNL_MSG_CONFIG, queue, [attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))], ack, 2),
        msg(NFQNL_MSG_CONFIG, queue, [attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", 65536))], ack, 3),
        msg(
            NFQNL_MSG_CONFIG,
            queue,
            [attr(NFQA_CFG_FLAGS, struct.pack("!I", flags)), attr(NFQA_CFG_MASK, struct.pack("!I", flags))],
            ack,
            4,
        ),
    ]
    for m in cfg:
        s.send(m)
        data = s.recv(65536)
        _, mtype = struct.unpack_from("=IH", data, 0)
        if mtype == NLMSG_ERROR:
            (err,) = struct.unpack_from("=i", data, 16)
            if err != 0:
                sys.exit(f"nfqueue config failed: {os.strerror(-err)}")


def packet_ids(data: bytes) -> list[int]:
    """Packet ids of the NFQNL_MSG_PACKET messages in one netlink read."""
    ids: list[int] = []
    off = 0
    while off + 16 <= len(data):
        ln, mtype = struct.unpack_from("=IH", data, off)
        if ln < 16:
            break
        if mtype == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            a = off + 20
            while a + 4 <= off + ln:
                alen, atype = struct.unpack_from("=HH", data, a)
                if alen < 4:
                    break
                if atype & 0x7FFF == NFQA_PACKET_HDR:
                    ids.append(struct.unpack_from("!I", data, a + 4)[0])
                    break
                a += (alen + 3) & ~3
        off += (ln + 3) & ~3
    return ids


def on_term(_signum: int, _frame: FrameType | None) -> None:
    sys.exit(0)


def main() -> None:
    queue, delay = int(sys.argv[1]), float(sys.argv[2]) / 1000.0
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((0, 0))
    bind_queue(s, queue)
    signal.signal(signal.SIGTERM, on_term)
    if len(sys.argv) > 3:
        with open(sys.argv[3] + ".tmp", "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(sys.argv[3] + ".tmp", sys.argv[3])
    pending: list[tuple[float, int]] = []  # (due, packet id)
    while True:
        timeout = max(0.0, pending[0][0] - time.monotonic()) if pending else None
        r, _, _ = select.select([s], [], [], timeout)
        if r:
            try:
                data = s.recv(1 << 20)
            except OSError:  # ENOBUFS: the kernel dropped notifications (fail-open keeps traffic alive)
                continue
            due = time.monotonic() + delay
            for pid in packet_ids(data):
                heapq.heappush(pending, (due, pid))
        now = time.monotonic()
        while pending and pending[0][0] <= now:
            _, pid = heapq.heappop(pending)
            s.send(msg(NFQNL_MSG_VERDICT, queue, [attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, pid))]))


if __name__ == "__main__":
    main()
