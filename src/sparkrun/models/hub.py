"""Talking to the Hugging Face Hub, only through huggingface_hub (imported lazily: it costs ~30 ms).

- The endpoint is `HF_ENDPOINT` (read at call time and passed explicitly, because the library reads it only once,
  at import), else https://huggingface.co.
- The token is never an argument: the library reads `HF_TOKEN` / `HUGGING_FACE_HUB_TOKEN` (or its token file)
  itself, so it cannot reach a log line, a plan or a process list. `token_present()` only says whether one is set.
- Library exceptions become one-line sparkrun errors naming the repo (`hub_errors`): gated without access,
  not found, revision not found, offline mode, Hub unreachable.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any, Final
from urllib.parse import urlsplit

from sparkrun.errors import HostError
from sparkrun.models.errors import GatedModelError, HubUnreachableError, ModelError, ModelNotFoundError
from sparkrun.models.repoinfo import RepoEntry, RepoSnapshot

DEFAULT_ENDPOINT: Final = "https://huggingface.co"


def hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_host() -> str:
    return urlsplit(hub_endpoint()).netloc or hub_endpoint()


def token_present() -> bool:
    return bool((os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or "").strip())


def hf() -> ModuleType:
    """huggingface_hub, imported on first use. Before the first import we default two settings (both only read at
    import): no telemetry, and no cache-wide shared blob store, so each repo's `blobs/` holds real files (what the
    host-to-host copy and `model_check.sh` expect)."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_SHARED_BLOBS", "1")
    import huggingface_hub  # deferred: heavy, and only needed when a model is fetched or inspected

    return huggingface_hub


def gated_error(repo_id: str) -> GatedModelError:
    if token_present():
        return GatedModelError(
            f"{repo_id}: gated model, and the token in HF_TOKEN has no access to it",
            hint=f"accept the license at {hub_endpoint()}/{repo_id} with the account that owns the token",
        )
    return GatedModelError(
        f"{repo_id}: gated model and no Hugging Face token",
        hint=f"accept the license at {hub_endpoint()}/{repo_id}, then `export HF_TOKEN=hf_...` (a read token)",
    )


def _library_error(exc: BaseException, repo_id: str, step: str, revision: str | None) -> Exception | None:
    from huggingface_hub import errors as lib  # deferred: heavy; only after a library call failed

    not_found_hint = None if token_present() else "check the name; a private repo needs `export HF_TOKEN=hf_...`"
    offline_hint = "unset HF_HUB_OFFLINE, or run with --offline to use only what is cached"
    # Order matters: GatedRepoError is a RepositoryNotFoundError, and every HTTP error is an HfHubHTTPError.
    table: list[tuple[type[BaseException], Callable[[], Exception]]] = [
        (lib.GatedRepoError, lambda: gated_error(repo_id)),
        (
            lib.RepositoryNotFoundError,
            lambda: ModelNotFoundError(f"{repo_id}: no such model on {hub_endpoint()}", hint=not_found_hint),
        ),
        (
            lib.RevisionNotFoundError,
            lambda: ModelNotFoundError(f"{repo_id}: revision {revision!r} not found", hint="fix `model_revision`"),
        ),
        (
            lib.RemoteEntryNotFoundError,
            lambda: ModelNotFoundError(f"{repo_id}: a file is missing from revision {revision}: {_short(exc)}"),
        ),
        (
            lib.OfflineModeIsEnabled,
            lambda: ModelError(
                f"{repo_id}: {step}: HF_HUB_OFFLINE is set, so the Hub cannot be asked", hint=offline_hint
            ),
        ),
        (lib.HfHubHTTPError, lambda: HubUnreachableError(hub_host(), step, f"{repo_id}: {_http_status(exc)}")),
    ]
    return next((make() for cls, make in table if isinstance(exc, cls)), None)


def _http_status(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return f"HTTP {getattr(response, 'status_code', '?')}: {_short(exc)}"


def _is_network_error(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionError | TimeoutError | socket.gaierror) or type(exc).__module__.startswith(
        ("httpx", "httpcore")
    )


def translate_hub_error(exc: BaseException, repo_id: str, step: str, revision: str | None = None) -> Exception:
    """The sparkrun error for a huggingface_hub / network / disk exception (or `exc` itself when it is none)."""
    from huggingface_hub import errors as lib  # deferred: heavy; only after a library call failed

    known = _library_error(exc, repo_id, step, revision)
    if known is not None:
        return known
    cause = exc.__cause__ if isinstance(exc, lib.LocalEntryNotFoundError) and exc.__cause__ else exc
    if _is_network_error(cause) or isinstance(exc, lib.LocalEntryNotFoundError):
        message = f"{repo_id}: cannot reach the Hub: {_short(cause)}"
        return HubUnreachableError(hub_host(), step, message, hint="check the network or HF_ENDPOINT")
    if isinstance(exc, OSError):
        return HostError("localhost", step, f"{repo_id}: {exc.strerror or _short(exc)}: {exc.filename or ''}".rstrip())
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


def _short(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:300]


@contextmanager
def hub_errors(repo_id: str, step: str, revision: str | None = None) -> Iterator[None]:
    """Translate library and network exceptions raised inside the block into sparkrun errors."""
    try:
        yield
    except (ModelError, HubUnreachableError):
        raise
    except Exception as exc:  # library boundary: every exception is translated or re-raised as is
        translated = translate_hub_error(exc, repo_id, step, revision)
        if translated is exc:
            raise
        raise translated from exc


def api() -> Any:
    return hf().HfApi(endpoint=hub_endpoint())


def fetch_snapshot(repo_id: str, revision: str) -> RepoSnapshot:
    """One `model_info(files_metadata=True)` call: the commit the revision points at and every file's metadata."""
    with hub_errors(repo_id, "model metadata", revision):
        info = api().model_info(repo_id, revision=revision, files_metadata=True)
    files = tuple(
        RepoEntry(s.rfilename, int(s.size or 0), s.blob_id, s.lfs.sha256 if s.lfs is not None else None)
        for s in info.siblings or ()
    )
    if not info.sha:
        raise HubUnreachableError(hub_host(), "model metadata", f"{repo_id}: the Hub answered without a commit")
    return RepoSnapshot(repo_id, str(info.sha), files, gated=bool(info.gated))


def fetch_small_file(repo_id: str, commit: str, filename: str, cache_dir: str) -> bytes:
    """A small file's content (config.json, an index), through `hf_hub_download` into `cache_dir`."""
    with hub_errors(repo_id, f"fetch {filename}", commit):
        path = hf().hf_hub_download(repo_id, filename, revision=commit, cache_dir=cache_dir, endpoint=hub_endpoint())
    with open(path, "rb") as fh:
        return fh.read()


def fetch_range(repo_id: str, commit: str, filename: str, start: int, end: int) -> bytes:
    """Bytes [start, end] of a file with one HTTP Range request on the library's session (no download)."""
    lib = hf()
    url = lib.hf_hub_url(repo_id, filename, revision=commit, endpoint=hub_endpoint())
    headers = lib.utils.build_hf_headers() | {"Range": f"bytes={start}-{end}"}
    with hub_errors(repo_id, f"read {filename}", commit):
        response = lib.utils.get_session().get(url, headers=headers, timeout=60)
        lib.utils.hf_raise_for_status(response)
        return bytes(response.content)


def safetensors_header(repo_id: str, commit: str, filename: str) -> dict[str, Any]:
    """Tensor dtypes and shapes of one safetensors file, from range reads of its header (library call)."""
    with hub_errors(repo_id, f"read {filename} header", commit):
        meta = api().parse_safetensors_file_metadata(repo_id, filename, revision=commit)
    return {name: {"dtype": t.dtype, "shape": list(t.shape)} for name, t in meta.tensors.items()}
