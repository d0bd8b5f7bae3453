"""URL routing of the Hub stand-in: request line + Authorization header in, `Reply` out (no I/O)."""

from __future__ import annotations

import hmac

from hubstub.repos import Snapshot, StubFile, StubRepo
from hubstub.server import (
    HubStub,
    Reply,
    _error,
    _json,
    cdn_location,
    model_info,
    parse_range,
    query,
    repo_tree,
    segments,
)


def route(stub: HubStub, role: str, method: str, path: str, auth: str | None) -> Reply:
    if method not in ("GET", "HEAD"):
        return _error(405, None, f"{method} is not supported by the stand-in")
    parts = segments(path)
    if role == "cdn":
        return _cdn(stub, parts, path)
    if parts == ["api", "agent-harnesses"]:
        return _json({})
    if len(parts) >= 4 and parts[:2] == ["api", "models"]:
        return _api(stub, parts[2:], path, auth)
    if len(parts) >= 5 and parts[2] == "resolve":
        return _resolve(stub, f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]), auth)
    return _error(404, None, f"no such page: {path}")


def _token_ok(stub: HubStub, auth: str | None) -> bool:
    scheme, _, token = (auth or "").partition(" ")
    return scheme.lower() == "bearer" and token in stub.tokens


def _repo_or_error(stub: HubStub, repo_id: str, auth: str | None) -> StubRepo | Reply:
    repo = stub.repos.get(repo_id)
    if repo is None:
        # Like the Hub: without credentials a missing repo is a 401 (private repos must not be discoverable).
        status = 404 if auth else 401
        return _error(status, "RepoNotFound", f"Repository not found: {repo_id}")
    return repo


def _snapshot_or_error(repo: StubRepo, revision: str) -> Snapshot | Reply:
    snapshot = repo.resolve(revision)
    if snapshot is None:
        return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
    return snapshot


def _api(stub: HubStub, rest: list[str], path: str, auth: str | None) -> Reply:
    repo_id = f"{rest[0]}/{rest[1]}"
    found = _repo_or_error(stub, repo_id, auth)
    if isinstance(found, Reply):
        return found
    tail = rest[2:]
    if tail == ["refs"]:
        branches = [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": c} for n, c in sorted(found.refs.items())]
        return _json({"branches": branches, "tags": [], "converts": []})
    if not tail or (len(tail) == 2 and tail[0] == "revision"):
        return _api_info(found, tail[1] if tail else "main", path)
    if len(tail) >= 2 and tail[0] == "tree":
        return _api_tree(found, tail[1], "/".join(tail[2:]), path)
    return _error(404, None, f"no such API: {path}")


def _api_info(repo: StubRepo, revision: str, path: str) -> Reply:
    snapshot = _snapshot_or_error(repo, revision)
    if isinstance(snapshot, Reply):
        return snapshot
    with_blobs = query(path).get("blobs", ["false"])[0].lower() == "true"
    return _json(model_info(repo, snapshot, with_blobs))


def _api_tree(repo: StubRepo, revision: str, prefix: str, path: str) -> Reply:
    snapshot = _snapshot_or_error(repo, revision)
    if isinstance(snapshot, Reply):
        return snapshot
    recursive = query(path).get("recursive", ["false"])[0].lower() == "true"
    return _json(repo_tree(snapshot, prefix, recursive))


def _resolve(stub: HubStub, repo_id: str, revision: str, file_path: str, auth: str | None) -> Reply:
    found = _repo_or_error(stub, repo_id, auth)
    if isinstance(found, Reply):
        return found
    snapshot = _snapshot_or_error(found, revision)
    if isinstance(snapshot, Reply):
        return snapshot
    if found.gated and not _token_ok(stub, auth):
        reply = _gated(repo_id, auth)
        reply.repo, reply.file = repo_id, file_path
        return reply
    item = snapshot.files.get(file_path)
    if item is None:
        return _error(404, "EntryNotFound", f"{file_path} does not exist on {revision}", commit=snapshot.commit)
    headers = {"X-Repo-Commit": snapshot.commit, "Accept-Ranges": "bytes"}
    if item.lfs:
        headers |= {
            "Location": cdn_location(stub, repo_id, item),
            "X-Linked-Etag": f'"{item.sha256}"',
            "X-Linked-Size": str(item.size),
            "ETag": f'"{item.sha256}"',
        }
        return Reply(302, headers, repo=repo_id, file=file_path)
    headers["ETag"] = f'"{item.blob_id}"'
    return _content(item, headers, repo_id)


def _gated(repo_id: str, auth: str | None) -> Reply:
    if auth is None:
        message = (
            f"Access to model {repo_id} is restricted. You must have access to it and be authenticated "
            "to access it. Please log in."
        )
        return _error(401, "GatedRepo", message)
    return _error(403, "GatedRepo", f"Access to model {repo_id} is restricted and you are not in the authorized list.")


def _content(item: StubFile, headers: dict[str, str], repo_id: str) -> Reply:
    """The whole file; `with_range` narrows it to the request's Range."""
    return Reply(
        200,
        headers | {"Content-Type": "application/octet-stream"},
        stream=(item, 0, item.size - 1),
        repo=repo_id,
        file=item.path,
    )


def _cdn(stub: HubStub, parts: list[str], path: str) -> Reply:
    if len(parts) != 2 or parts[0] != "cdn":
        return _error(404, None, "no such object")
    sha256 = parts[1]
    repo_id = query(path).get("repo", [""])[0]
    signature = query(path).get("sig", [""])[0]
    if not hmac.compare_digest(signature, stub.sign(repo_id, sha256)):
        return _error(403, None, "bad signature")
    item = stub.repos.by_sha256(repo_id, sha256)
    if item is None:
        return _error(404, None, "no such object")
    headers = {"ETag": f'"{item.sha256}"', "Accept-Ranges": "bytes"}
    return _content(item, headers, repo_id)


def with_range(reply: Reply, range_header: str | None) -> Reply:
    """Turn a whole-file reply into 206 / 416 according to the request's Range header."""
    if reply.stream is None or reply.status != 200:
        return reply
    item = reply.stream[0]
    wanted = parse_range(range_header, item.size)
    if wanted is None:
        return reply
    if wanted == "invalid":
        return Reply(416, {"Content-Range": f"bytes */{item.size}"}, repo=reply.repo, file=reply.file)
    assert isinstance(wanted, tuple)
    first, last = wanted
    headers = reply.headers | {"Content-Range": f"bytes {first}-{last}/{item.size}"}
    return Reply(206, headers, stream=(item, first, last), repo=reply.repo, file=reply.file)
