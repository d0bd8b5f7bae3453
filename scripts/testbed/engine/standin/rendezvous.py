"""Multi-node rendezvous over TCP, the way torch.distributed / NCCL bootstrap behaves from the outside.

Rank 0 listens on the master port (all interfaces). Every rank, rank 0 included, connects to ``addr:port`` as a
client (so a wrong master address fails on the head too), says hello, and waits until all ``nnodes`` ranks have
joined. Workers retry the connection until the rendezvous timeout and then fail with a torch-like error.
After the rendezvous, ranks exchange heartbeats: a peer that closes its connection or stays silent for the peer
timeout is lost, and the others fail with an NCCL-like error. A head that stops cleanly says "bye" first, and its
workers then exit with status 0.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from .runtime import Fail, Lifecycle, Log, knob_float, local_ip_towards

HEARTBEAT_S = 1.0


class LineConn:
    """JSON lines over a socket, with a receive timeout and a send lock."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.lock = threading.Lock()
        self.closed = False

    def send(self, obj: dict[str, Any]) -> bool:
        data = json.dumps(obj).encode() + b"\n"
        with self.lock:
            try:
                self.sock.sendall(data)
                return True
            except OSError:
                return False

    def recv(self, timeout: float) -> dict[str, Any] | None:
        """One message; None on timeout; raises EOFError when the peer closed or the connection broke."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                r, _, _ = select.select([self.sock], [], [], left)
                if not r:
                    return None
                data = self.sock.recv(65536)
            except (OSError, ValueError) as e:
                raise EOFError(str(e)) from None
            if not data:
                raise EOFError("connection closed by peer")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        try:
            msg = json.loads(line)
        except ValueError:
            raise EOFError(f"garbage from peer: {line[:60]!r}") from None
        return msg if isinstance(msg, dict) else {}

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()


class Rendezvous:
    def __init__(
        self,
        engine: str,
        nnodes: int,
        rank: int,
        addr: str,
        port: int,
        life: Lifecycle,
        log: Log,
        what: str = "master",
        listen: bool | None = None,
        peer_error: Callable[[str, str], str] | None = None,
    ) -> None:
        self.listen = rank == 0 if listen is None else listen  # rank 0 hosts the store unless told otherwise
        self.peer_error = peer_error  # how a lost member is reported (default: NCCL-like)
        self.engine = engine
        self.nnodes = nnodes
        self.rank = rank
        self.addr = addr
        self.port = port
        self.life = life
        self.log = log
        self.what = what
        self.timeout = knob_float("STANDIN_RENDEZVOUS_TIMEOUT", 60.0)
        self.peer_timeout = knob_float("STANDIN_PEER_TIMEOUT", 10.0)
        self.listener: socket.socket | None = None
        self.members: dict[int, tuple[LineConn, str]] = {}  # rank -> (conn, host), on rank 0
        self.members_lock = threading.Lock()
        self.all_joined = threading.Event()
        self.client: LineConn | None = None
        self.peers: dict[int, str] = {}

    # -- rank 0: the store ------------------------------------------------------------------------------------
    def _listen(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", self.port))
            s.listen(64)
        except OSError as e:
            s.close()
            raise Fail(
                "torch.distributed.DistNetworkError: The server socket has failed to listen on any local network "
                f"address. port: {self.port}, useIpv6: false, code: -{e.errno}, name: "
                f"{'EADDRINUSE' if e.errno == 98 else 'E' + str(e.errno)}, message: {e.strerror}"
            ) from None
        self.listener = s
        self.port = int(s.getsockname()[1])  # port 0 asks for a free one (mpirun's hub)
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        assert self.listener is not None
        while not self.life.stopped.is_set():
            try:
                r, _, _ = select.select([self.listener], [], [], 0.2)
                if not r:
                    continue
                sock, peer = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._register, args=(LineConn(sock), peer[0]), daemon=True).start()

    def _problem(self, hello: dict[str, Any], peer_ip: str) -> str | None:
        rank, nnodes, engine = hello.get("rank"), hello.get("nnodes"), hello.get("engine")
        if engine != self.engine:
            return f"rank {rank} at {peer_ip} runs {engine}, the head runs {self.engine}"
        if nnodes != self.nnodes:
            return f"rank {rank} at {peer_ip} was started with nnodes={nnodes}, the head with nnodes={self.nnodes}"
        if not isinstance(rank, int) or not 0 <= rank < self.nnodes:
            return f"rank {rank} at {peer_ip} is out of range for nnodes={self.nnodes}"
        if self.all_joined.is_set():
            return f"rank {rank} at {peer_ip} joined after the rendezvous had completed"
        if rank in self.members:
            return f"rank {rank} joined twice (from {self.members[rank][1]} and {peer_ip})"
        return None

    def _register(self, conn: LineConn, peer_ip: str) -> None:
        try:
            hello = conn.recv(10.0)
        except EOFError:
            hello = None
        if not hello or hello.get("event") != "hello":  # not one of ours (a port probe, say)
            conn.close()
            return
        rank = hello.get("rank")
        with self.members_lock:
            problem = self._problem(hello, peer_ip)
            if problem is None:
                assert isinstance(rank, int)
                self.members[rank] = (conn, str(hello.get("host") or peer_ip))
                joined = len(self.members)
                ranks = {str(r): h for r, (_, h) in self.members.items()}
        if problem is not None:
            conn.send({"event": "error", "message": problem})
            conn.close()
            self.life.fail(f"RuntimeError: rendezvous failed: {problem}")
            return
        assert isinstance(rank, int)
        self.log.info(f"rendezvous: rank {rank} joined from {peer_ip} ({joined}/{self.nnodes})")
        if joined == self.nnodes:
            for c, _ in list(self.members.values()):
                c.send({"event": "ready", "ranks": ranks})
            self.all_joined.set()
            members = lambda: [c for c, _ in self.members.values()]  # noqa: E731
            threading.Thread(target=heartbeat, args=(self.life, members), daemon=True).start()
        while not self.all_joined.wait(0.5):  # watch this member once everyone is in
            if self.life.stopped.is_set():
                return
        who = f"rank {rank} ({self.members[rank][1]})"
        watch(self.life, self.log, conn, who, self.peer_timeout, bye_fails=True, error=self.peer_error)

    # -- every rank: the client -------------------------------------------------------------------------------
    def _connect(self) -> LineConn:
        deadline = time.monotonic() + self.timeout
        next_note = time.monotonic() + 5
        last_err = "timed out"
        while time.monotonic() < deadline:
            left = deadline - time.monotonic()
            try:
                sock = socket.create_connection((self.addr, self.port), timeout=min(2.0, max(left, 0.1)))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return LineConn(sock)
            except OSError as e:
                last_err = e.strerror or str(e)
            if time.monotonic() >= next_note:
                self.log.info(f"Waiting for the {self.what} at {self.addr}:{self.port} ({last_err}); retrying")
                next_note = time.monotonic() + 5
            self.life.expect(self.life.sleep(0.5))
        raise Fail(
            f"torch.distributed.DistNetworkError: The client socket has timed out after {self.timeout:g}s while "
            f"trying to connect to ({self.addr}, {self.port}). ({last_err})"
        )

    def _await_ready(self, conn: LineConn) -> dict[int, str]:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            self.life.expect(not self.life.stopped.is_set())
            try:
                msg = conn.recv(0.5)
            except EOFError as e:
                raise Fail(
                    f"RuntimeError: the {self.what} at {self.addr}:{self.port} closed the connection ({e})"
                ) from None
            if msg is not None and msg.get("event") == "error":
                raise Fail(f"RuntimeError: rendezvous failed: {msg.get('message')}")
            if msg is not None and msg.get("event") == "ready":
                return {int(r): str(h) for r, h in (msg.get("ranks") or {}).items()}
        raise Fail(
            f"RuntimeError: rendezvous timed out after {self.timeout:g}s: not all {self.nnodes} ranks joined at "
            f"{self.addr}:{self.port}"
        )

    def run(self) -> None:
        """Block until all ranks have joined; raises Fail (with the real engines' kind of error) or Stopped."""
        self.life.on_stop.append(self.close)
        if self.listen:
            self._listen()
        self.log.info(
            f"rendezvous: rank {self.rank}/{self.nnodes} via {self.what} {self.addr}:{self.port} "
            f"(timeout {self.timeout:g}s)"
        )
        conn = self._connect()
        self.client = conn
        me = local_ip_towards(self.addr)
        conn.send({"event": "hello", "rank": self.rank, "nnodes": self.nnodes, "engine": self.engine, "host": me})
        self.peers = self._await_ready(conn)
        self.log.info(f"rendezvous complete: {self.nnodes} ranks: {self.peers}")
        threading.Thread(target=heartbeat, args=(self.life, lambda: [conn]), daemon=True).start()
        who = f"the {self.what} ({self.addr})"
        threading.Thread(
            target=watch, args=(self.life, self.log, conn, who, self.peer_timeout, False), daemon=True
        ).start()

    def serve(self) -> None:
        """Host the store only (no rank of its own here): mpirun's hub for the ranks it starts."""
        self.life.on_stop.append(self.close)
        self._listen()

    def close(self) -> None:
        """Clean shutdown: tell the peers (the head tells every worker), then close the sockets."""
        if self.listen and self.life.code == 0:
            for c, _ in list(self.members.values()):
                c.send({"event": "bye"})
        elif self.client is not None and self.life.code == 0 and self.life.signalled:
            self.client.send({"event": "bye"})
        for c, _ in list(self.members.values()):
            c.close()
        if self.client is not None:
            self.client.close()
        if self.listener is not None:
            self.listener.close()


def heartbeat(life: Lifecycle, conns: Callable[[], list[LineConn]]) -> None:
    """Send a ping on every connection each HEARTBEAT_S until stopped."""
    while not life.stopped.is_set():
        for c in conns():
            if not c.closed:
                c.send({"event": "ping"})
        life.stopped.wait(HEARTBEAT_S)


def watch(
    life: Lifecycle,
    log: Log,
    conn: LineConn,
    who: str,
    peer_timeout: float,
    bye_fails: bool,
    error: Callable[[str, str], str] | None = None,
) -> None:
    """Fail `life` when the peer on `conn` closes, breaks or stays silent for `peer_timeout` seconds.

    A peer saying "bye" fails `life` when `bye_fails` (a worker leaving the head), else stops it cleanly (the
    head telling its workers to exit)."""
    make_error = error or nccl_error
    last = time.monotonic()
    while not life.stopped.is_set():
        try:
            msg = conn.recv(0.5)
        except EOFError as e:
            if not life.stopped.is_set() and not conn.closed:
                life.fail(make_error(who, f"connection lost: {e}"))
            return
        now = time.monotonic()
        if msg is None:
            if now - last > peer_timeout:
                life.fail(make_error(who, f"no heartbeat for {peer_timeout:g}s"))
                return
            continue
        last = now
        if msg.get("event") == "bye":
            if bye_fails:
                life.fail(make_error(who, "the peer shut down"))
            else:
                log.info(f"{who} shut down; exiting")
                life.stopped.set()
            return


def nccl_error(who: str, detail: str) -> str:
    return (
        f"RuntimeError: NCCL error in: ProcessGroupNCCL.cpp, remote process exited or there was a network error, "
        f"NCCL version 2.27.7\nncclRemoteError: A call failed possibly due to a network error or a remote process "
        f"exiting prematurely. Last error: {who}: {detail}"
    )
