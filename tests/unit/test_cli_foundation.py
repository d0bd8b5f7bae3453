"""The CLI foundation: fast start, exit codes, one-line errors, isolated config."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sparkrun import __version__
from sparkrun.cli import COMMANDS, cli
from sparkrun.config import cache_dir, config_dir

ROOT = Path(__file__).resolve().parents[2]
HEAVY = (
    "yaml",
    "rich",
    "scitrera_app_framework",
    "vpd",
    "huggingface_hub",
    "sparkrun.recipes",
    "sparkrun.api",
    "sparkrun.transport",
    "sparkrun.launch",
    "sparkrun.core",
    "sparkrun.jobs",
)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sparkrun", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_import_none_of_the_heavy_modules(flag: str) -> None:
    code = (
        "import sys\n"
        "from sparkrun.cli import main\n"
        f"sys.argv = ['sparkrun', {flag!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"loaded = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print('LOADED', loaded, file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert "LOADED []" in proc.stderr, proc.stderr


def test_the_job_commands_load_no_launch_setup_or_distribution_layer() -> None:
    # `status`, `logs` and `stop` go through sparkrun.api.Session; the layers only `run`, `sync`, `setup` use load on
    # first use, so those commands start faster.
    code = (
        "import sys\n"
        "from sparkrun.api import Session, Target\n"
        "Session().select_for_job(Target(hosts='h1'), '')\n"
        "layers = ('sparkrun.launch', 'sparkrun.setup', 'sparkrun.distribution', 'sparkrun.models')\n"
        "print('LOADED', sorted(m for m in sys.modules if m.startswith(layers)), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert "LOADED []" in proc.stderr, proc.stderr


def test_version_prints_the_package_version() -> None:
    proc = run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"sparkrun, version {__version__}"


def test_help_lists_every_command_without_importing_them() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in result.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_loads_and_has_help(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_an_unknown_command_is_a_usage_error() -> None:
    proc = run_cli("frobnicate")
    assert proc.returncode == 2
    assert "No such command" in proc.stderr


def test_bad_input_is_one_line_with_a_hint_and_no_traceback(tmp_path: Path) -> None:
    proc = run_cli("run", str(tmp_path / "missing.yaml"), "-H", "h1", "--dry-run")
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("error: ")
    assert any(line.startswith("hint: ") for line in lines)
    assert "Traceback" not in proc.stderr


def test_bad_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    recipe = tmp_path / "broken.yaml"
    recipe.write_text("model: x\ndefaults:\n  port: [1,\n")
    proc = run_cli("recipe", "validate", str(recipe))
    assert proc.returncode == 3
    assert f"{recipe}:4: invalid YAML" in proc.stdout + proc.stderr  # the report names the file and line
    assert "Traceback" not in proc.stdout + proc.stderr


def test_missing_hosts_is_an_input_error() -> None:
    proc = run_cli("status")
    assert proc.returncode == 3
    assert "no hosts" in proc.stderr


def test_config_and_cache_dirs_follow_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPARKRUN_CONFIG_DIR", str(tmp_path / "explicit"))
    assert config_dir() == tmp_path / "explicit"
    monkeypatch.delenv("SPARKRUN_CONFIG_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_dir() == tmp_path / "xdg" / "sparkrun"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config_dir() == tmp_path / "home" / ".config" / "sparkrun"
    monkeypatch.delenv("SPARKRUN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache" / "sparkrun"


def test_help_version_and_dry_run_create_no_files(isolated_home: Path) -> None:
    before = sorted(p for p in isolated_home.rglob("*"))
    for args in (["--help"], ["--version"], ["run", "qwen3-1.7b-vllm", "-H", "10.0.0.1", "--dry-run"]):
        assert run_cli(*args).returncode == 0
    assert sorted(p for p in isolated_home.rglob("*")) == before


def test_version_drift_is_detected_and_fixed(tmp_path: Path) -> None:
    for rel in (
        "versions.yaml",
        "pyproject.toml",
        "src/sparkrun/__init__.py",
        "sparkrun-cc-plugin/.claude-plugin/plugin.json",
        "scripts/update-versions.py",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    script = tmp_path / "scripts" / "update-versions.py"
    assert subprocess.run([sys.executable, str(script), "--check"], capture_output=True, check=False).returncode == 0
    (tmp_path / "versions.yaml").write_text("sparkrun: 9.9.9\n")
    check = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, check=False)
    assert check.returncode == 1
    assert "pyproject.toml" in check.stderr
    subprocess.run([sys.executable, str(script)], check=True, capture_output=True)
    assert '__version__ = "9.9.9"' in (tmp_path / "src/sparkrun/__init__.py").read_text()
    assert '"version": "9.9.9"' in (tmp_path / "sparkrun-cc-plugin/.claude-plugin/plugin.json").read_text()
    assert subprocess.run([sys.executable, str(script), "--check"], capture_output=True, check=False).returncode == 0


def test_shell_completion_answers_instead_of_printing_help() -> None:
    source = run_cli(env={"_SPARKRUN_COMPLETE": "bash_source"})
    assert source.returncode == 0 and "_sparkrun_completion" in source.stdout and "Usage:" not in source.stdout
    words = run_cli(
        env={"_SPARKRUN_COMPLETE": "bash_complete", "COMP_WORDS": "sparkrun run qwen3-1.7b-v", "COMP_CWORD": "2"}
    )
    assert "plain,qwen3-1.7b-vllm" in words.stdout.splitlines()
    commands = run_cli(env={"_SPARKRUN_COMPLETE": "bash_complete", "COMP_WORDS": "sparkrun sta", "COMP_CWORD": "1"})
    assert commands.stdout.splitlines() == ["plain,status"]


def test_cluster_names_complete_from_the_config_dir(tmp_path: Path) -> None:
    clusters = tmp_path / "clusters"
    clusters.mkdir()
    (clusters / "lab.yaml").write_text("name: lab\nhosts: [a]\n")
    env = {
        "SPARKRUN_CONFIG_DIR": str(tmp_path),
        "_SPARKRUN_COMPLETE": "bash_complete",
        "COMP_WORDS": "sparkrun status --cluster l",
        "COMP_CWORD": "3",
    }
    assert run_cli(env=env).stdout.splitlines() == ["plain,lab"]
