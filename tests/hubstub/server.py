"""A Hugging Face Hub stand-in: a small threaded HTTP server that answers the requests huggingface_hub 2.4.0 makes
for `model_info`, `list_repo_tree`, `hf_hub_download`, `snapshot_download` and `parse_safetensors_file_metadata`.

Like the Hub: `/api/models/{repo}[/revision/{rev}]` (siblings with sizes and LFS sha256 when `blobs=True`),
`/api/models/{repo}/tree/{rev}[/{path}]`, `/api/models/{repo}/refs`, and `/{repo}/resolve/{rev}/{path}` (HEAD and
GET, `X-Repo-Commit`, `ETag`, `Content-Length`, `Accept-Ranges`, Range → 206). LFS files answer with a 302 to a
second listener (the "CDN", another port, so the library treats it as a foreign host: it reads `X-Linked-Etag` /
`X-Linked-Size` from the redirect and drops the Authorization header). Errors carry the Hub's `X-Error-Code`
(`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`, `GatedRepo`). Xet is never advertised, so the library takes
the plain HTTP path.

Bodies stream from files on disk (sendfile), so a ~1 GB model costs no memory. Every request is recorded with its
status, range and whether it carried an Authorization header, and bytes served are counted per file as they go.
Faults: `drop_after` (close the connection mid-body once), `throttle` (bytes per second for one file).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from hubstub.repos import RepoSet, Snapshot, StubFile, StubRepo, stub_file


@dataclass(frozen=True)
class RequestRecord:
    server: str  # "hub" or "cdn"
    method: str
    path: str
    status: int
    authorized: bool  # the request carried an Authorization header
    range: str | None
    repo: str | None = None
    file: str | None = None


@dataclass
class Faults:
    drops: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (repo, file) -> byte offsets, used once
    throttles: dict[tuple[str, str], int] = field(default_factory=dict)  # (repo, file) -> bytes per second


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: list[RequestRecord] = []
        self._bytes: dict[tuple[str, str], int] = {}

    def record(self, rec: RequestRecord) -> None:
        with self._lock:
            self.requests.append(rec)

    def add_bytes(self, repo: str, path: str, n: int) -> None:
        with self._lock:
            self._bytes[(repo, path)] = self._bytes.get((repo, path), 0) + n

    def bytes_served(self, repo: str | None = None, path: str | None = None) -> int:
        with self._lock:
            return sum(n for (r, p), n in self._bytes.items() if repo in (None, r) and path in (None, p))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._bytes.clear()


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stream: tuple[StubFile, int, int] | None = None  # file, first byte, last byte (inclusive)
    repo: str | None = None
    file: str | None = None


def _error(status: int, code: str | None, message: str, commit: str | None = None) -> Reply:
    headers = {"Content-Type": "application/json", "X-Error-Message": message}
    if code:
        headers["X-Error-Code"] = code
    if commit:
        headers["X-Repo-Commit"] = commit
    return Reply(status, headers, json.dumps({"error": message}).encode())


def _json(data: Any) -> Reply:
    return Reply(200, {"Content-Type": "application/json"}, json.dumps(data).encode())


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(first, last) for a single `bytes=` range, None for no range, "invalid" when unsatisfiable."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    first_s, _, last_s = spec.strip().partition("-")
    if unit.strip().lower() != "bytes" or "," in spec:
        return "invalid"
    if not first_s:  # suffix range: the last N bytes
        n = int(last_s)
        return (max(size - n, 0), size - 1) if n > 0 and size else "invalid"
    first, last = int(first_s), int(last_s) if last_s else size - 1
    if first >= size or last < first:
        return "invalid"
    return first, min(last, size - 1)


class HubStub:
    """The stand-in. `with HubStub() as hub: hub.add_repo(...)`; `hub.endpoint` is the HF_ENDPOINT value."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, tokens: frozenset[str] = frozenset()) -> None:
        self.host = host
        self.tokens = set(tokens)
        self.repos = RepoSet()
        self.stats = Stats()
        self.faults = Faults()
        self._secret = os.urandom(16)
        self._hub = _Server((host, port), _HubHandler, self, "hub")
        self._cdn = _Server((host, 0), _HubHandler, self, "cdn")
        self._threads: list[threading.Thread] = []

    # --- lifecycle -----------------------------------------------------------------------------------------------
    def start(self) -> HubStub:
        for server in (self._hub, self._cdn):
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in (self._hub, self._cdn):
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> HubStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        return f"http://{_url_host(self.host)}:{self._hub.server_address[1]}"

    @property
    def cdn_endpoint(self) -> str:
        return f"http://{_url_host(self.host)}:{self._cdn.server_address[1]}"

    # --- content ---------------------------------------------------------------------------------------------------
    def add_repo(
        self, repo_id: str, files: Mapping[str, Path], *, gated: bool = False, branch: str = "main"
    ) -> Snapshot:
        """Serve `files` (repo path -> file on disk) as a new commit of `repo_id` on `branch`."""
        return self.repos.add(repo_id, (stub_file(p, src) for p, src in files.items()), gated=gated, branch=branch)

    def add_repo_dir(self, repo_id: str, root: Path, *, gated: bool = False, branch: str = "main") -> Snapshot:
        files = {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}
        return self.add_repo(repo_id, files, gated=gated, branch=branch)

    # --- observation and faults ------------------------------------------------------------------------------------
    def bytes_served(self, repo: str | None = None, path: str | None = None) -> int:
        return self.stats.bytes_served(repo, path)

    def requests(self, **match: Any) -> list[RequestRecord]:
        return [r for r in list(self.stats.requests) if all(getattr(r, k) == v for k, v in match.items())]

    def authorized_requests(self) -> list[RequestRecord]:
        return [r for r in list(self.stats.requests) if r.authorized]

    def drop_after(self, repo: str, path: str, nbytes: int) -> None:
        """The next GET of the file closes the connection after `nbytes` of the file (counted from offset 0)."""
        self.faults.drops.setdefault((repo, path), []).append(nbytes)

    def throttle(self, repo: str, path: str, bytes_per_second: int) -> None:
        self.faults.throttles[(repo, path)] = bytes_per_second

    def sign(self, repo_id: str, sha256: str) -> str:
        return hmac.new(self._secret, f"{repo_id}\n{sha256}".encode(), hashlib.sha256).hexdigest()[:32]


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], stub: HubStub, role: str):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, handler)
        self.stub = stub
        self.role = role


class _HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._handle(head=False)

    def do_HEAD(self) -> None:
        self._handle(head=True)

    def _handle(self, *, head: bool) -> None:
        from hubstub.routes import route, with_range  # the routing table lives beside the server

        stub = self.server.stub
        auth = self.headers.get("Authorization")
        reply = with_range(route(stub, self.server.role, self.command, self.path, auth), self.headers.get("Range"))
        # Recorded before the answer goes out, so a client that got its answer always finds the record.
        stub.stats.record(
            RequestRecord(
                self.server.role,
                self.command,
                urlsplit(self.path).path,
                reply.status,
                auth is not None,
                self.headers.get("Range"),
                reply.repo,
                reply.file,
            )
        )
        if reply.stream is not None and reply.status in (200, 206):
            self._send_stream(reply, head)
        else:
            self._send(reply, head)

    def _send(self, reply: Reply, head: bool) -> None:
        self.send_response(reply.status)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if not head and reply.body:
            self.wfile.write(reply.body)

    def _send_stream(self, reply: Reply, head: bool) -> None:
        assert reply.stream is not None and reply.repo is not None
        item, first, last = reply.stream
        self.send_response(reply.status)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(last - first + 1))
        self.end_headers()
        if head:
            return
        self.wfile.flush()
        stub = self.server.stub
        key = (reply.repo, item.path)
        drops = stub.faults.drops.get(key)
        drop_at = drops.pop(0) if drops else None
        rate = stub.faults.throttles.get(key)
        try:
            self._copy(item.source, first, last + 1, drop_at, rate, key)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _copy(self, source: Path, start: int, end: int, drop_at: int | None, rate: int | None, key: tuple[str, str]):
        stub = self.server.stub
        sock = self.connection
        stop = end if drop_at is None else max(start, min(end, drop_at))
        chunk = 1 << 20 if rate is None else max(1024, rate // 20)
        began = time.monotonic()
        sent_total = 0
        with source.open("rb") as fh:
            offset = start
            while offset < stop:
                want = min(chunk, stop - offset)
                stub.stats.add_bytes(key[0], key[1], want)  # counted before the client can have them
                try:
                    sent = os.sendfile(sock.fileno(), fh.fileno(), offset, want)
                except OSError:
                    stub.stats.add_bytes(key[0], key[1], -want)
                    raise
                if sent < want:
                    stub.stats.add_bytes(key[0], key[1], sent - want)
                if sent == 0:
                    break
                offset += sent
                sent_total += sent
                if rate:
                    ahead = sent_total / rate - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)
        if drop_at is not None and stop < end:
            self.close_connection = True
            sock.shutdown(socket.SHUT_RDWR)


def repo_tree(snapshot: Snapshot, prefix: str, recursive: bool) -> list[dict[str, Any]]:
    """Tree entries like the Hub's: files (with LFS info) and the directories they imply."""
    base = prefix.strip("/")
    entries: dict[str, dict[str, Any]] = {}
    for item in snapshot.files.values():
        if base and not item.path.startswith(base + "/"):
            continue
        rest = item.path[len(base) + 1 :] if base else item.path
        parts = rest.split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(filter(None, [base, *parts[:depth]]))
            if recursive or depth == 1:
                oid = hashlib.sha1(directory.encode(), usedforsecurity=False).hexdigest()
                entries.setdefault(directory, {"type": "directory", "oid": oid, "size": 0, "path": directory})
        if recursive or len(parts) == 1:
            entries[item.path] = file_entry(item)
    return [entries[k] for k in sorted(entries)]


def file_entry(item: StubFile) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "file", "oid": item.blob_id, "size": item.size, "path": item.path}
    if item.lfs:
        entry["lfs"] = {"oid": item.sha256, "size": item.size, "pointerSize": item.pointer_size}
    return entry


def model_info(repo: StubRepo, snapshot: Snapshot, with_blobs: bool) -> dict[str, Any]:
    siblings = []
    for item in snapshot.files.values():
        sib: dict[str, Any] = {"rfilename": item.path}
        if with_blobs:
            sib.update(size=item.size, blobId=item.blob_id)
            if item.lfs:
                sib["lfs"] = {"size": item.size, "sha256": item.sha256, "pointerSize": item.pointer_size}
        siblings.append(sib)
    return {
        "_id": hashlib.sha1(repo.repo_id.encode(), usedforsecurity=False).hexdigest()[:24],
        "id": repo.repo_id,
        "modelId": repo.repo_id,
        "sha": snapshot.commit,
        "private": False,
        "gated": "manual" if repo.gated else False,
        "disabled": False,
        "lastModified": "2025-01-01T00:00:00.000Z",
        "tags": [],
        "siblings": siblings,
    }


def query(path: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(path).query)


def segments(path: str) -> list[str]:
    return [unquote(s) for s in urlsplit(path).path.split("/") if s]


def cdn_location(stub: HubStub, repo_id: str, item: StubFile) -> str:
    """A signed URL on the CDN listener (no Authorization needed, like the Hub's signed CDN links)."""
    return f"{stub.cdn_endpoint}/cdn/{item.sha256}?repo={quote(repo_id)}&sig={stub.sign(repo_id, item.sha256)}"
