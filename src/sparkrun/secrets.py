"""Which environment names hold credentials, and how every output shows them: one rule for the whole package.

A name that looks like a credential (`*TOKEN*`, `*SECRET*`, `*PASSWORD*`, `*API_KEY*`, ...) never reaches a command
line (the launch sends it on stdin) and is shown as `MASK` wherever sparkrun prints values (plans, `show`, JSON)."""

from __future__ import annotations

import re
from collections.abc import Mapping

SECRET_KEY_RE = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|PRIVATE_KEY)", re.IGNORECASE)
MASK = "<secret>"


def is_secret(name: str) -> bool:
    return SECRET_KEY_RE.search(name) is not None


def masked(env: Mapping[str, str]) -> dict[str, str]:
    """`env` as it may be shown: values of secret names replaced by `MASK`."""
    return {key: MASK if is_secret(key) else value for key, value in env.items()}
