"""The scripts runtimes ship (in-container wrappers and ib_detect.sh) are valid bash and pass shellcheck."""

from __future__ import annotations

import subprocess
from importlib.resources import files
from pathlib import Path

import pytest

SHELL = Path(str(files("sparkrun").joinpath("shell")))
SCRIPTS = [*sorted((SHELL / "container").glob("*.sh")), SHELL / "ib_detect.sh"]


def test_the_scripts_are_found() -> None:
    assert {path.name for path in SCRIPTS} >= {"ray_head.sh", "ib_detect.sh"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_bash_parses_it(script: Path) -> None:
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_shellcheck_is_clean(script: Path, shellcheck: str) -> None:
    result = subprocess.run([shellcheck, "--shell=bash", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
