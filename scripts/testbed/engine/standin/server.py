"""A small OpenAI-compatible HTTP server: /health, /v1/models, /v1/chat/completions (SSE or JSON)."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .runtime import Lifecycle, Log, knob, knob_float


@dataclass
class ServedModel:
    engine: str  # vllm | sglang | llama-server | trtllm | max | atlas | tokenary
    served_name: str
    root: str  # the model as loaded (path or repo id)
    max_model_len: int = 8192
    check_model_field: bool = False  # vLLM answers 404 for an unknown "model" in a request
    health_only: bool = False  # SGLang ranks > 0 run only a health endpoint
    created: int = field(default_factory=lambda: int(time.time()))
    aliases: tuple[str, ...] = ()  # further served names (vLLM's --served-model-name a b): listed and accepted
    api_keys: tuple[str, ...] = ()  # --api-key: /v1/* answers 401 without `Authorization: Bearer <one of them>`
    api_prefix: str = ""  # llama-server's --api-prefix: every route lives under it (404 elsewhere)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.served_name, *self.aliases)


OWNERS = {"vllm": "vllm", "sglang": "sglang", "trtllm": "tensorrt_llm", "max": "modular", "atlas": "atlas"}
OWNERS["tokenary"] = "tokenary"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], app: HttpApp) -> None:
        self.app = app
        super().__init__(addr, _Handler, bind_and_activate=True)


def reply_text(messages: list[dict[str, Any]], model: ServedModel) -> str:
    """Deterministic answer: honours 'Reply with exactly: X' (readiness probes), else a fixed sentence."""
    last = ""
    for m in messages:
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):
                content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            last = str(content or "")
    found = re.search(r"[Rr]eply with exactly:?\s*(.+?)\s*$", last)
    if found:
        return found.group(1).strip().strip("\"'`")
    return f"Hello from the {model.engine} stand-in serving {model.served_name}."


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    # -- helpers -----------------------------------------------------------------------------------------------
    def _json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.server.app.access(self.command, self.path, status, self.client_address[0])

    def _error(self, status: int, message: str, kind: str) -> None:
        self._json(status, {"error": {"message": message, "type": kind, "code": status}, "object": "error"})

    def _authorized(self) -> bool:
        """vLLM's --api-key: every /v1 route needs the bearer token (401 otherwise)."""
        keys = self.server.app.model.api_keys
        if not keys or not self.path.startswith("/v1"):
            return True
        given = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if given in keys:
            return True
        self._error(401, "Unauthorized", "unauthorized")
        return False

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _route(self) -> str | None:
        """The request's path inside the API prefix, or None (answered 404) when it is outside."""
        path = self.path.split("?", 1)[0]
        prefix = self.server.app.model.api_prefix.rstrip("/")
        if not prefix:
            return path
        if path == prefix or path.startswith(prefix + "/"):
            return path[len(prefix) :] or "/"
        self._error(404, "File Not Found", "not_found_error")
        return None

    # -- routes ------------------------------------------------------------------------------------------------
    def _health(self, path: str) -> None:
        app = self.server.app
        if not app.ready.is_set():
            self._error(503, "Loading model", "unavailable_error")
        elif app.model.engine == "llama-server":
            self._json(200, {"status": "ok"})
        else:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            app.access("GET", path, 200, self.client_address[0])

    def _models(self) -> None:
        m = self.server.app.model
        owner = OWNERS.get(m.engine, "llamacpp")
        cards = [
            {
                "id": name,
                "object": "model",
                "created": m.created,
                "owned_by": owner,
                "root": m.root,
                "parent": None,
                "max_model_len": m.max_model_len,
            }
            for name in m.names
        ]
        self._json(200, {"object": "list", "data": cards})

    def _metrics(self) -> None:
        app = self.server.app
        data = f"# stand-in metrics\n{app.model.engine.replace('-', '_')}_requests_total {app.requests}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _gate(self) -> bool:
        """True when an API route may answer: not a health-only rank, loaded, and authorized."""
        app = self.server.app
        if app.model.health_only:
            self._error(404, "Not Found", "not_found_error")
            return False
        if not app.ready.is_set():
            self._error(503, "Loading model", "unavailable_error")
            return False
        return self._authorized()

    def do_GET(self) -> None:
        app = self.server.app
        path = self._route()
        if path is None:
            return
        if path in ("/health", "/health_generate"):
            self._health(path)
            return
        if not self._gate():
            return
        routes = {
            "/v1/models": self._models,
            "/version": lambda: self._json(200, {"version": app.version}),
            "/get_model_info": lambda: self._json(
                200, {"model_path": app.model.root, "served_model_name": app.model.served_name}
            ),
            "/metrics": self._metrics,
        }
        routes["/props"] = routes["/get_model_info"]
        routes.get(path, lambda: self._error(404, "Not Found", "not_found_error"))()

    def do_POST(self) -> None:
        app = self.server.app
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self._route()
        if path is None:
            return
        if path not in ("/v1/chat/completions", "/v1/completions"):
            self._error(404, "Not Found", "not_found_error")
            return
        if not self._gate():
            return
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
        except ValueError as e:
            self._error(400, f"invalid JSON body: {e}", "BadRequestError")
            return
        m = app.model
        if m.check_model_field and body.get("model") not in (None, *m.names):
            self._error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
            return
        app.requests += 1
        chat = path.endswith("/chat/completions")
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                self._error(400, "messages must be a non-empty list", "BadRequestError")
                return
            text = reply_text(messages, m)
        else:
            text = reply_text([{"role": "user", "content": str(body.get("prompt", ""))}], m)
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        words = re.findall(r"\S+\s*", text)
        if isinstance(max_tokens, int) and max_tokens > 0:
            words = words[:max_tokens]
        if body.get("stream"):
            self._stream(body, words, chat)
        else:
            self._complete(body, words, chat)

    def _ids(self, chat: bool) -> tuple[str, str, int]:
        return (
            (f"chatcmpl-{uuid.uuid4().hex}" if chat else f"cmpl-{uuid.uuid4().hex}"),
            ("chat.completion" if chat else "text_completion"),
            int(time.time()),
        )

    def _usage(self, body: dict[str, Any], words: list[str]) -> dict[str, int]:
        prompt = len(json.dumps(body.get("messages") or body.get("prompt") or "").split())
        return {"prompt_tokens": prompt, "completion_tokens": len(words), "total_tokens": prompt + len(words)}

    def _complete(self, body: dict[str, Any], words: list[str], chat: bool) -> None:
        cid, obj, created = self._ids(chat)
        text = "".join(words)
        choice: dict[str, Any] = (
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop", "logprobs": None}
            if chat
            else {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
        )
        self._json(
            200,
            {
                "id": cid,
                "object": obj,
                "created": created,
                "model": self.server.app.model.served_name,
                "choices": [choice],
                "usage": self._usage(body, words),
            },
        )

    def _stream(self, body: dict[str, Any], words: list[str], chat: bool) -> None:
        app = self.server.app
        cid, _, created = self._ids(chat)
        obj = "chat.completion.chunk" if chat else "text_completion"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        delay = knob_float("STANDIN_TOKEN_DELAY", 0.01)

        def event(choice: dict[str, Any], usage: dict[str, int] | None = None) -> None:
            chunk: dict[str, Any] = {
                "id": cid,
                "object": obj,
                "created": created,
                "model": app.model.served_name,
                "choices": [choice] if choice else [],
            }
            if usage is not None:
                chunk["usage"] = usage
            self._chunk(b"data: " + json.dumps(chunk).encode() + b"\n\n")

        try:
            if chat:
                event({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None})
            for w in words:
                if app.life.stopped.is_set():
                    return
                if chat:
                    event({"index": 0, "delta": {"content": w}, "finish_reason": None, "logprobs": None})
                else:
                    event({"index": 0, "text": w, "finish_reason": None, "logprobs": None})
                time.sleep(delay)
            last = {"index": 0, "delta": {}, "finish_reason": "stop"} if chat else {"index": 0, "text": ""}
            if not chat:
                last["finish_reason"] = "stop"
            event(last)
            opts = body.get("stream_options")
            if isinstance(opts, dict) and opts.get("include_usage"):
                event({}, self._usage(body, words))
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            return
        app.access("POST", self.path, 200, self.client_address[0])


class HttpApp:
    """Owns the listening socket. `early` says what the port does before :meth:`set_ready` (see STANDIN_EARLY_HTTP)."""

    def __init__(self, model: ServedModel, host: str, port: int, life: Lifecycle, log: Log, version: str) -> None:
        self.model = model
        self.host = host
        self.port = port
        self.life = life
        self.log = log
        self.version = version
        self.ready = threading.Event()
        self.requests = 0
        self.server: _Server | None = None
        self.serving = False
        self.access_log = knob("STANDIN_ACCESS_LOG", "1") == "1"

    def access(self, method: str, path: str, status: int, client: str) -> None:
        if self.access_log:
            self.log.info(f'{client} - "{method} {path} HTTP/1.1" {status}')

    def bind(self) -> bool:
        try:
            self.server = _Server((self.host, self.port), self)
        except OSError as e:
            self.life.fail(
                f"[Errno {e.errno}] error while attempting to bind on address ('{self.host}', {self.port}): "
                f"{(e.strerror or str(e)).lower()}"
            )
            return False
        self.life.on_stop.append(self.close)
        return True

    def serve(self) -> None:
        assert self.server is not None
        self.serving = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()

    def start(self, early: str) -> bool:
        """Before the engine is ready: bind (and maybe answer 503) per `early`."""
        if early == "refuse":
            return True
        if not self.bind():
            return False
        if early == "503":
            self.serve()
        return True

    def set_ready(self, early: str) -> bool:
        if self.server is None and not self.bind():
            return False
        if early != "503":
            self.serve()
        self.ready.set()
        return True

    def close(self) -> None:
        if self.server is not None:
            if self.serving:  # shutdown() waits for serve_forever(), which may never have started
                self.server.shutdown()
            self.server.server_close()
