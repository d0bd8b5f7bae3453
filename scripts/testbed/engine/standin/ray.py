"""`ray` stand-in: `ray start --head|--address`, `ray status`, `ray stop`, and the Ray side of
`vllm serve --distributed-executor-backend ray` (wait until the cluster has enough GPUs, fail when a node dies).

The head runs a small "GCS" on --port: nodes register over TCP, keep their connection open and exchange
heartbeats; a node whose connection drops or goes silent is dead. Without --block, `ray start` daemonizes and
returns 0 once the node is up (or 1 with Ray's kind of error), like the real one. The cluster address is written
to <temp dir>/ray_current_cluster (temp dir: --temp-dir, $RAY_TMPDIR, /tmp/ray), where `ray status` and vLLM look.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .flags import Dialect, FlagSet, UsageError
from .rendezvous import LineConn, heartbeat, watch
from .runtime import (
    Fail,
    Lifecycle,
    Log,
    Stopped,
    default_node_ip,
    gpus_for_ray,
    knob_float,
    local_ip_towards,
    plain_style,
    split_hostport,
    version_from_list,
)

START_FLAGS = FlagSet.load("ray-start", dialect=Dialect(equals=True, dash_values=True))
VERSION = version_from_list("ray-start", r"ray-([0-9][^-]*)-cp", "2.60.0")
DEFAULT_PORT = 6379


def temp_dir(flag: str | None = None) -> Path:
    return Path(flag or os.environ.get("RAY_TMPDIR") or "/tmp/ray")


def click_error(command: str, message: str) -> int:
    print(f"Usage: ray {command} [OPTIONS]\nTry 'ray {command} --help' for help.\n\nError: {message}", file=sys.stderr)
    return 2


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("Usage: ray [OPTIONS] COMMAND [ARGS]...\n\nCommands:\n  start\n  status\n  stop")
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"ray, version {VERSION}")
        return 0
    commands: dict[str, Callable[[list[str]], int]] = {"start": start, "status": status, "stop": stop}
    if argv[0] not in commands:
        print(f"Usage: ray [OPTIONS] COMMAND [ARGS]...\n\nError: No such command '{argv[0]}'.", file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


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


# -- ray start --------------------------------------------------------------------------------------------------
def node_info(node_ip: str, gpus: int) -> dict[str, Any]:
    return {
        "node_id": secrets.token_hex(28),
        "node_ip": node_ip,
        "resources": {"CPU": float(os.cpu_count() or 1), "GPU": float(gpus)},
    }


def register_pid(tmp: Path, role: str) -> None:
    tmp.mkdir(parents=True, exist_ok=True)
    with open(tmp / "standin-ray.pids", "a") as f:
        f.write(f"{os.getpid()} {role}\n")


def start(argv: list[str]) -> int:
    try:
        p = START_FLAGS.parse(argv)
        port = p.get_int("--port", DEFAULT_PORT)
        gpus = p.get_int("--num-gpus", gpus_for_ray())
    except UsageError as e:
        return click_error("start", str(e).replace("unrecognized arguments", "No such option"))
    if p.flag("--help"):
        print("Usage: ray start [OPTIONS]")
        return 0
    if p.positionals:
        return click_error("start", f"Got unexpected extra argument ({p.positionals[0]})")
    tmp = temp_dir(p.get("--temp-dir"))
    try:
        job = _job(p.flag("--head"), p.get("--address"), p.get("--node-ip-address"), port, gpus, tmp)
    except ValueError as e:
        print(f"ValueError: {e}", file=sys.stderr)
        return 1
    if p.flag("--block"):
        return _foreground(job, tmp)
    return _daemonize(job, tmp, "head" if p.flag("--head") else "worker")


def _job(
    head: bool, address: str | None, node_ip: str | None, port: int, gpus: int, tmp: Path
) -> Callable[[Lifecycle, Log], str]:
    if head:
        ip = node_ip or default_node_ip()
        return lambda life, log: _run_head(life, log, ip, port, gpus, tmp)
    if not address:
        raise ValueError("If --head is not passed in, --address must be provided.")
    host, _ = split_hostport(address, "--address")
    ip = node_ip or local_ip_towards(host)
    return lambda life, log: _run_worker(life, log, ip, address, gpus, tmp)


def _started_message(summary: str, block: bool) -> str:
    lines = [summary, "--------------------", "Ray runtime started.", "--------------------", ""]
    if block:
        lines += [
            "--block",
            "  This command will now block forever until terminated by a signal.",
            "  Running subprocesses are monitored and a message will be printed if any of them terminate unexpectedly.",
        ]
    else:
        lines += ["To terminate the Ray runtime, run", "  ray stop"]
    return "\n".join(lines)


def _run_head(life: Lifecycle, log: Log, node_ip: str, port: int, gpus: int, tmp: Path) -> str:
    gcs = Gcs(life, log)
    gcs.listen(port)
    gcs.add(node_info(node_ip, gpus))
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "ray_current_cluster").write_text(f"{node_ip}:{port}\n")
    return (
        f"Local node IP: {node_ip}\n\nNext steps\n  To add another node to this Ray cluster, run\n"
        f"    ray start --address='{node_ip}:{port}'\n"
    )


def _run_worker(life: Lifecycle, log: Log, node_ip: str, address: str, gpus: int, tmp: Path) -> str:
    host, port = split_hostport(address, "--address")
    timeout = knob_float("STANDIN_RENDEZVOUS_TIMEOUT", 60.0)
    deadline = time.monotonic() + timeout
    last_err = "timed out"
    conn = None
    while conn is None:
        try:
            conn = LineConn(socket.create_connection((host, port), timeout=2.0))
        except OSError as e:
            last_err = e.strerror or str(e)
            if time.monotonic() > deadline:
                raise Fail(
                    f"ConnectionError: Unable to connect to GCS at {address} ({last_err}) after {timeout:g}s. Check "
                    "that (1) Ray GCS with matching version started successfully at the specified address, and (2) "
                    "there is no firewall setting preventing access."
                ) from None
            life.expect(life.sleep(0.5))
    info = node_info(node_ip, gpus)
    conn.send({"op": "register", **info})
    try:
        reply = conn.recv(10.0)
    except EOFError as e:
        raise Fail(f"ConnectionError: GCS at {address} closed the connection: {e}") from None
    if not reply or not reply.get("ok"):
        raise Fail(f"ConnectionError: GCS at {address} refused the node: {reply}")
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "ray_current_cluster").write_text(f"{address}\n")

    def bye() -> None:  # a node stopped by a signal (ray stop) leaves cleanly
        if life.code == 0 and life.signalled:
            conn.send({"event": "bye"})

    life.on_stop.append(bye)
    life.on_stop.append(conn.close)
    threading.Thread(target=heartbeat, args=(life, lambda: [conn]), daemon=True).start()

    def gcs_error(who: str, detail: str) -> str:
        return f"[raylet] Failed to connect to GCS at {address} ({who}: {detail}). The raylet exits now."

    peer_timeout = knob_float("STANDIN_PEER_TIMEOUT", 10.0)
    threading.Thread(target=watch, args=(life, log, conn, "GCS", peer_timeout, False, gcs_error), daemon=True).start()
    return f"Local node IP: {node_ip}\n"


def _foreground(job: Callable[[Lifecycle, Log], str], tmp: Path) -> int:
    log = Log(plain_style)
    life = Lifecycle(log)
    life.install_signals()

    def body() -> None:
        summary = job(life, log)
        register_pid(tmp, "block")
        log.raw(_started_message(summary, block=True))

    return life.run(body)


def _await_daemon(r: int, pid: int) -> int:
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    result = b"".join(chunks).decode()
    if result.startswith("ok\n"):
        print(_started_message(result[3:], block=False))
        return 0
    print(result.removeprefix("error\n") or "ray start: the node failed to start", file=sys.stderr)
    return 1


def _daemonize(job: Callable[[Lifecycle, Log], str], tmp: Path, role: str) -> int:
    """Fork a daemon running `job`; print its start-up result and return 0, or the error and 1."""
    r, w = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(w)
        return _await_daemon(r, pid)
    os.close(r)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    tmp.mkdir(parents=True, exist_ok=True)
    logs = tmp / "logs"
    logs.mkdir(exist_ok=True)
    fd = os.open(logs / f"standin-{role}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    log = Log(plain_style)
    life = Lifecycle(log)
    life.install_signals()
    reported = False

    def report(text: str) -> None:
        nonlocal reported
        if not reported:
            reported = True
            with contextlib.suppress(OSError):
                os.write(w, text.encode())
                os.close(w)

    def body() -> None:
        try:
            summary = job(life, log)
        except Fail as e:
            report(f"error\n{e}")
            raise
        except Stopped:
            report("error\nstopped while starting")
            raise
        register_pid(tmp, role)
        report(f"ok\n{summary}")

    code = life.run(body)
    report(f"error\nexited with status {code}")
    os._exit(code)


# -- ray status / ray stop --------------------------------------------------------------------------------------
def status(argv: list[str]) -> int:
    address = None
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--address" and args:
            address = args.pop(0)
        elif a.startswith("--address="):
            address = a.split("=", 1)[1]
        elif a in ("-v", "--verbose"):
            continue
        elif a == "--help":
            print("Usage: ray status [OPTIONS]")
            return 0
        else:
            return click_error("status", f"No such option: {a}")
    address = address or current_cluster()
    if not address:
        print(
            "ConnectionError: Could not find any running Ray instance. Please specify the one to connect to by "
            "setting `--address` flag or `RAY_ADDRESS` environment variable.",
            file=sys.stderr,
        )
        return 1
    try:
        state = query(address)
    except (OSError, EOFError, ValueError) as e:
        print(f"ConnectionError: Ray cluster at {address} is not reachable: {e}", file=sys.stderr)
        return 1
    alive = [n for n in state["nodes"] if n.get("alive")]
    cpus = sum(float(n["resources"].get("CPU", 0)) for n in alive)
    out = [
        f"======== Autoscaler status: {time.strftime('%Y-%m-%d %H:%M:%S')} ========",
        "Node status",
        "---------------------------------------------------------------",
        "Active:",
        *[f" 1 node_{n['node_id']}" for n in alive],
        "Pending:",
        " (no pending nodes)",
        "Recent failures:",
        *([f" {f}" for f in state["failures"]] or [" (no failures)"]),
        "",
        "Resources",
        "---------------------------------------------------------------",
        "Total Usage:",
        f" 0.0/{cpus:.1f} CPU",
        f" 0.0/{float(gpus_alive(state)):.1f} GPU",
        "",
        "Total Demands:",
        " (no resource demands)",
    ]
    print("\n".join(out))
    return 0


def stop(argv: list[str]) -> int:
    force = any(a in ("-f", "--force") for a in argv)
    for a in argv:
        if (
            a not in ("-f", "--force", "-v", "--verbose")
            and not a.startswith(("-g", "--grace-period"))
            and not a.isdigit()
        ):
            return click_error("stop", f"No such option: {a}")
    tmp = temp_dir()
    pids_file = tmp / "standin-ray.pids"
    pids: list[int] = []
    with contextlib.suppress(OSError):
        for line in pids_file.read_text().splitlines():
            with contextlib.suppress(ValueError, IndexError):
                pids.append(int(line.split()[0]))
    alive = []
    for pid in pids:
        if pid != os.getpid() and _is_standin(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL if force else signal.SIGTERM)
                alive.append(pid)
    deadline = time.monotonic() + 10
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _is_standin(p)]
        time.sleep(0.1)
    for pid in alive:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        pids_file.unlink()
    with contextlib.suppress(OSError):
        (tmp / "ray_current_cluster").unlink()
    n = len([p for p in pids if p != os.getpid()])
    print(f"Stopped all {n} Ray processes." if n else "Did not find any active Ray processes.")
    return 0


def _is_standin(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return b"ray" in cmd and state != "Z"


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
