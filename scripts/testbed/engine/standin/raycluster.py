"""The Ray cluster side of the `ray` stand-in: a tiny GCS (node registry with heartbeats), queries of it, and what
`vllm serve --distributed-executor-backend ray` does with it (wait until the cluster has enough GPUs, then fail
when a node dies). The cluster address lives in <temp dir>/ray_current_cluster (temp dir: --temp-dir,
$RAY_TMPDIR, /tmp/ray), where `ray status` and vLLM look, like the real Ray."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from .rendezvous import LineConn, heartbeat
from .runtime import Fail, Lifecycle, Log, gpus_for_ray, knob_float, split_hostport


def temp_dir(flag: str | None = None) -> Path:
    return Path(flag or os.environ.get("RAY_TMPDIR") or "/tmp/ray")


# -- a tiny GCS -------------------------------------------------------------------------------------------------
class Gcs:
    def __init__(self, life: Lifecycle, log: Log) -> None:
        self.life = life
        self.log = log
        self.nodes: dict[str, dict[str, Any]] = {}  # node_id -> info (alive flag included)
        self.conns: dict[str, LineConn] = {}
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.peer_timeout = knob_float("STANDIN_PEER_TIMEOUT", 10.0)

    def listen(self, port: int) -> socket.socket:
        try:
            srv = socket.create_server(("0.0.0.0", port), backlog=64)
        except OSError as e:
            raise Fail(f"ConnectionError: Failed to start the GCS server on port {port}: {e.strerror}") from None
        self.life.on_stop.append(srv.close)
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()
        threading.Thread(target=heartbeat, args=(self.life, lambda: list(self.conns.values())), daemon=True).start()
        self.life.on_stop.append(self.say_bye)
        return srv

    def add(self, info: dict[str, Any]) -> None:
        with self.lock:
            self.nodes[info["node_id"]] = {**info, "alive": True}

    def _accept(self, srv: socket.socket) -> None:
        srv.settimeout(0.5)
        while not self.life.stopped.is_set():
            try:
                sock, peer = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._client, args=(LineConn(sock), peer[0]), daemon=True).start()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"ok": True, "nodes": [dict(n) for n in self.nodes.values()], "failures": list(self.failures)}

    def _client(self, conn: LineConn, peer: str) -> None:
        try:
            msg = conn.recv(10.0)
        except EOFError:
            msg = None
        if not msg:
            conn.close()
            return
        if msg.get("op") == "status":
            conn.send(self.snapshot())
            conn.close()
            return
        if msg.get("op") != "register":
            conn.send({"ok": False, "error": f"unknown op {msg.get('op')!r}"})
            conn.close()
            return
        info: dict[str, Any] = {k: msg[k] for k in ("node_id", "node_ip", "resources") if k in msg}
        node_id = str(info.get("node_id"))
        self.add(info)
        self.conns[node_id] = conn
        conn.send({"ok": True})
        self.log.raw(f"[gcs] node {node_id[:8]} at {info.get('node_ip')} joined ({info.get('resources')})")
        last = time.monotonic()
        reason = "disconnected"
        while not self.life.stopped.is_set():
            try:
                m = conn.recv(0.5)
            except EOFError:
                break
            if m is not None:
                last = time.monotonic()
                if m.get("event") == "bye":
                    reason = "stopped"
                    break
            elif time.monotonic() - last > self.peer_timeout:
                reason = f"missed heartbeats for {self.peer_timeout:g}s"
                break
        with self.lock:
            self.conns.pop(node_id, None)
            if node_id in self.nodes:
                self.nodes[node_id]["alive"] = False
                self.failures.append(f"{info.get('node_ip')}: {reason}")
        conn.close()
        if not self.life.stopped.is_set():
            self.log.raw(f"[gcs] node {node_id[:8]} at {info.get('node_ip')} is dead ({reason})")

    def say_bye(self) -> None:
        for c in list(self.conns.values()):
            c.send({"event": "bye"})


def query(address: str, timeout: float = 3.0) -> dict[str, Any]:
    """The cluster state from the GCS at address; raises OSError/EOFError when it cannot be reached."""
    host, port = split_hostport(address, "address")
    with socket.create_connection((host, port), timeout=timeout) as sock:
        conn = LineConn(sock)
        conn.send({"op": "status"})
        reply = conn.recv(timeout)
    if not reply or not reply.get("ok"):
        raise EOFError(f"bad reply from {address}")
    return reply


def gpus_alive(state: dict[str, Any]) -> int:
    return int(sum(float(n.get("resources", {}).get("GPU", 0)) for n in state["nodes"] if n.get("alive")))


def current_cluster() -> str | None:
    env = os.environ.get("RAY_ADDRESS", "")
    if env and env not in ("auto", "local"):
        return env.removeprefix("ray://")
    try:
        return (temp_dir() / "ray_current_cluster").read_text().strip() or None
    except OSError:
        return None


# -- vllm serve --distributed-executor-backend ray --------------------------------------------------------------
def wait_for_ray_gpus(world: int, life: Lifecycle, log: Log) -> None:
    """Block until the Ray cluster has `world` GPUs (fail after the rendezvous timeout), then watch it."""
    address = current_cluster()
    timeout = knob_float("STANDIN_RENDEZVOUS_TIMEOUT", 60.0)
    if address is None:
        log.info("No existing Ray cluster found; starting a local Ray instance")
        have = gpus_for_ray()
        if have < world:
            life.expect(life.sleep(timeout))
            raise Fail(placement_error(world, timeout, have))
        return
    log.info(f"Connecting to existing Ray cluster at address: {address}...")
    deadline = time.monotonic() + timeout
    next_note = time.monotonic()
    have = 0
    while True:
        try:
            have = gpus_alive(query(address))
        except (OSError, EOFError, ValueError) as e:
            raise Fail(f"ConnectionError: Could not connect to the Ray cluster at {address}: {e}") from None
        if have >= world:
            break
        if time.monotonic() > deadline:
            raise Fail(placement_error(world, timeout, have))
        if time.monotonic() >= next_note:
            log.info(
                f"Waiting for creating a placement group of specs for {int(deadline - time.monotonic())} seconds. "
                f"specs={[{'GPU': 1.0}] * world}. Check `ray status` to see if you have enough resources ({have} GPUs)."
            )
            next_note = time.monotonic() + 5
        life.expect(life.sleep(0.5))
    log.info(f"Ray cluster has {have} GPUs; placement group of {world} bundles created")
    threading.Thread(target=_watch_cluster, args=(address, world, life), daemon=True).start()


def placement_error(world: int, timeout: float, have: int) -> str:
    return (
        f"ValueError: Cannot provide a placement group of placement_group_specs={[{'GPU': 1.0}] * world} within "
        f"{timeout:g} seconds (the cluster has {have} GPUs). See `ray status` to make sure the cluster has enough "
        "resources."
    )


def _watch_cluster(address: str, world: int, life: Lifecycle) -> None:
    misses = 0
    while life.sleep(1.0):
        try:
            have = gpus_alive(query(address))
            misses = 0
        except (OSError, EOFError, ValueError) as e:
            misses += 1
            if misses >= 3:
                life.fail(f"ray.exceptions.RaySystemError: System error: GCS at {address} is unreachable: {e}")
                return
            continue
        if have < world:
            life.fail(
                "ray.exceptions.ActorDiedError: The actor died unexpectedly before finishing this task. "
                f"The actor's node died (the cluster now has {have} of the {world} GPUs the model needs)."
            )
            return
