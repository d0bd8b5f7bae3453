"""llama.cpp stand-ins: `rpc-server` (a GGML RPC backend) and `llama-server` (the HTTP server, optionally using
rpc-servers via --rpc host:port,... which it connects to once at start-up and needs for its whole life)."""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

from .flags import Dialect, FlagSet, UsageError
from .rendezvous import LineConn, heartbeat, watch
from .runtime import (
    Fail,
    Lifecycle,
    Log,
    arm_ready_failure,
    knob,
    knob_float,
    model_problem,
    plain_style,
    split_hostport,
    startup,
    visible_gpus,
    warn_unknown,
)
from .server import HttpApp, ServedModel

LLAMA_FLAGS = FlagSet.load(
    "llama-server",
    "llama-server.extra",
    dialect=Dialect(equals=False, dash_values=True),
    nargs={"--control-vector-layer-range": "2"},
)
RPC_FLAGS = FlagSet.load("rpc-server", dialect=Dialect(equals=False, dash_values=True))
BUILD = "6000 (standin)"
RPC_PROTO = "3.0.0"
DEFAULT_MODEL = "models/7B/ggml-model-f16.gguf"


def rpc_error(who: str, detail: str) -> str:
    return f"ggml_backend_rpc: {who}: {detail}\nGGML_ASSERT(status) failed: RPC connection lost"


# -- rpc-server -------------------------------------------------------------------------------------------------
def rpc_server(argv: list[str]) -> int:
    usage = "usage: rpc-server [options]"
    if argv[:1] == ["--version"]:  # not in the real rpc-server (which has no version flag); answers for probes
        print(f"version: {BUILD}")
        return 0
    try:
        p = RPC_FLAGS.parse(argv)
        port = p.get_int("--port", 50052)
    except UsageError as e:
        # The real rpc-server prints this and exits with status 0; the stand-in exits 1 so mistakes show.
        print(f"error: unknown argument: {str(e).split(': ', 1)[-1]}", file=sys.stderr)
        print(usage, file=sys.stderr)
        return 1
    if p.flag("--help"):
        print(usage)
        return 0
    host = p.get("--host") or "127.0.0.1"
    log = Log(plain_style)
    life = Lifecycle(log)
    life.install_signals()

    def body() -> None:
        warn_unknown(log, p.unknown, "rpc-server")
        gpus = visible_gpus()
        if gpus == 0:
            raise Fail("ggml_cuda_init: failed to initialize CUDA: no CUDA-capable device is detected")
        if host != "127.0.0.1":
            log.raw(
                f"WARNING: Host ('{host}') is != '127.0.0.1'\n         Never expose the RPC server to an open network!"
            )
        try:
            srv = socket.create_server((host, port), reuse_port=False, backlog=16)
        except OSError as e:
            raise Fail(f"Failed to create server socket: {e.strerror}") from None
        life.on_stop.append(srv.close)
        log.raw(f"Starting RPC server v{RPC_PROTO}\n  endpoint       : {host}:{port}\n  local cache    : n/a")
        log.raw("Devices:\n  CUDA0: NVIDIA GB10 (122502 MiB, 119000 MiB free)")
        threading.Thread(target=_rpc_accept, args=(srv, life, log), daemon=True).start()

    return life.run(body)


def _rpc_accept(srv: socket.socket, life: Lifecycle, log: Log) -> None:
    while not life.stopped.is_set():
        try:
            srv.settimeout(0.5)
            sock, peer = srv.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        threading.Thread(target=_rpc_client, args=(LineConn(sock), peer[0], life, log), daemon=True).start()


def _rpc_client(conn: LineConn, peer: str, life: Lifecycle, log: Log) -> None:
    log.raw(f"Accepted client connection from {peer}")
    try:
        hello = conn.recv(10.0)
        if not hello or hello.get("event") != "hello":
            return
        conn.send({"event": "hello", "proto": RPC_PROTO, "device": "CUDA0", "free_mib": 119000})
        last = time.monotonic()
        while not life.stopped.is_set():  # answer pings until the client goes away
            msg = conn.recv(0.5)
            if msg is not None:
                last = time.monotonic()
                if msg.get("event") == "ping":
                    conn.send({"event": "ping"})
            elif time.monotonic() - last > knob_float("STANDIN_PEER_TIMEOUT", 10.0):
                return
    except EOFError:
        return
    finally:
        conn.close()
        log.raw("Client connection closed")


# -- llama-server -----------------------------------------------------------------------------------------------
def connect_rpc(endpoint: str, life: Lifecycle, log: Log) -> LineConn:
    try:
        host, port = split_hostport(endpoint, "--rpc")
    except ValueError as e:
        raise Fail(f"error: {e}") from None
    timeout = knob_float("STANDIN_RPC_CONNECT_TIMEOUT", 5.0)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
        conn = LineConn(sock)
        conn.send({"event": "hello", "client": "llama-server"})
        reply = conn.recv(timeout)
    except (OSError, EOFError) as e:
        raise Fail(
            f"ggml_backend_rpc: failed to connect to {host}:{port}: {getattr(e, 'strerror', None) or e}\n"
            f"error: failed to add RPC device for server '{endpoint}'"
        ) from None
    if not reply or reply.get("event") != "hello":
        raise Fail(f"error: {endpoint} is not an RPC server (no handshake)")
    log.raw(f"llama_model_load_from_file_impl: using device RPC0 (RPC[{endpoint}]) - {reply.get('free_mib')} MiB free")
    return conn


def model_load_problem(path: str | None, hf: str | None, url: str | None) -> str | None:
    if hf:
        repo, _, quant = hf.partition(":")
        return model_problem(repo, quant or None)
    if url:
        return None
    if path is None:
        return f"gguf_init_from_file: failed to open GGUF file '{DEFAULT_MODEL}' (No such file or directory)"
    if knob("STANDIN_CHECK_MODEL", "0") == "1" and not Path(path).exists():
        return f"gguf_init_from_file: failed to open GGUF file '{path}' (No such file or directory)"
    return None


def llama_server(argv: list[str]) -> int:
    if argv[:1] == ["--version"]:
        print(f"version: {BUILD}\nbuilt with standin for x86_64-linux-gnu")
        return 0
    try:
        p = LLAMA_FLAGS.parse(argv)
        port = p.get_int("--port", 8080)
    except UsageError as e:
        print(f"error: invalid argument: {str(e).split(': ', 1)[-1]}", file=sys.stderr)
        return 1
    if p.flag("--help"):
        print("usage: llama-server [options]")
        return 0
    host = p.get("--host") or "127.0.0.1"
    hf = p.get("--hf-repo")
    model = p.get("--model") or hf or p.get("--model-url") or DEFAULT_MODEL
    served = p.get("--alias") or model
    rpc = [e for e in (p.get("--rpc") or "").split(",") if e]
    ctx = p.get_int("--ctx-size", 4096)
    log = Log(plain_style)
    life = Lifecycle(log)
    life.install_signals()

    def body() -> None:
        log.raw(f"build: {BUILD} with standin for x86_64-linux-gnu\nsystem info: n_threads = 2")
        warn_unknown(log, p.unknown, "llama-server")
        if visible_gpus() == 0:
            log.raw("ggml_cuda_init: no CUDA devices found, running on CPU")
        problem = model_load_problem(p.get("--model"), hf, p.get("--model-url"))
        early = knob("STANDIN_EARLY_HTTP", "503")
        model_info = ServedModel("llama-server", served, model, ctx, api_prefix=p.get("--api-prefix") or "")
        app = HttpApp(model_info, host, port, life, log, BUILD)
        life.expect(app.start(early))
        log.raw(f"main: HTTP server is listening, hostname: {host}, port: {port}, http threads: 3")
        log.raw("main: loading model")
        log.raw(f"srv    load_model: loading model '{model}'")
        if problem:
            raise Fail(
                f"{problem}\nsrv    load_model: failed to load model, '{model}'\nmain: exiting due to a model error"
            )
        conns = [connect_rpc(e, life, log) for e in rpc]
        for c, e in zip(conns, rpc, strict=True):
            life.on_stop.append(c.close)
            threading.Thread(
                target=watch,
                args=(life, log, c, f"RPC[{e}]", knob_float("STANDIN_PEER_TIMEOUT", 10.0), False, rpc_error),
                daemon=True,
            ).start()
        if conns:
            threading.Thread(target=heartbeat, args=(life, lambda: conns), daemon=True).start()
        life.expect(startup(life, "llama-server"))
        life.expect(app.set_ready(early))
        log.raw("main: model loaded")
        log.raw(f"main: server is listening on http://{host}:{port} - starting the main loop")
        log.raw("srv  update_slots: all slots are idle")
        arm_ready_failure(life, "llama-server")

    return life.run(body)
