"""Errors of the model layer. Each is one line naming the repo (and the host or step when there is one) plus a hint.

- `ModelError` (exit 3, invalid input): bad model reference, no weights for the runtime, unknown quant.
- `GatedModelError`: a gated repo and no (or an unauthorised) token.
- `ModelNotFoundError`: repo, revision or file does not exist (or is private and no token was sent).
- `ModelNotCachedError`: offline, and files or metadata are missing; `missing` lists the exact files.
- `HubUnreachableError` (exit 4, host error): the Hub endpoint could not be reached or failed.
"""

from __future__ import annotations

from collections.abc import Sequence

from sparkrun.errors import HostError, InputError


class ModelError(InputError):
    pass


class GatedModelError(ModelError):
    pass


class ModelNotFoundError(ModelError):
    pass


class ModelNotCachedError(ModelError):
    def __init__(self, message: str, *, missing: Sequence[str] = (), hint: str | None = None) -> None:
        detail = "\n".join(f"  missing: {path}" for path in missing) or None
        super().__init__(message, hint=hint, detail=detail)
        self.missing = tuple(missing)


class HubUnreachableError(HostError):
    pass
