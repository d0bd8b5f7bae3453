"""`ray` stand-in: `ray start --head|--address`, `ray status`, `ray stop`.

The head runs a small "GCS" on --port (raycluster.py): nodes register over TCP, keep their connection open and
exchange heartbeats; a node whose connection drops or goes silent is dead. Without --block, `ray start`
daemonizes and returns 0 once the node is up (or 1 with Ray's kind of error), like the real one.
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
from .raycluster import Gcs, current_cluster, gpus_alive, query, temp_dir
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
    for flag in p.unknown:
        print(f"Warning: unrecognized option {flag}: not in ray start's flag list; ignored", file=sys.stderr)
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
