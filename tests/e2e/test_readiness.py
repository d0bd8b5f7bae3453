"""Readiness asks the server: it completes with a name the engine lists, reports the names it really serves, and a
4xx answer (a route that is not there, a missing API key) ends it at once with the engine's message and a hint."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.cli import IMAGE, ok, sparkrun, sparkrun_containers
from testbed.harness import Testbed

pytestmark = pytest.mark.e2e


@pytest.fixture
def env(sparkrun_env: dict[str, str], testbed: Testbed) -> Iterator[dict[str, str]]:
    yield sparkrun_env
    sparkrun(sparkrun_env, "stop", "--all", "--cluster", "testbed")


def recipe(tmp_path: Path, name: str, command: str, runtime: str = "vllm", env: str = "") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f'recipe_version: "2"\nmodel: Qwen/Qwen3-1.7B\nruntime: {runtime}\n'
        f"defaults:\n  port: 8000\n  host: 0.0.0.0\n{env}command: |\n  {command}\n"
    )
    return str(path)


def run(env: dict[str, str], path: str, testbed: Testbed) -> dict[str, object]:
    out = ok(
        env, "run", path, "--cluster", "testbed", "-H", testbed.hosts[0], "--image", IMAGE, "--json", "--no-follow"
    )
    data: dict[str, object] = json.loads(out.stdout)
    return data


def test_a_served_name_given_only_in_the_command_text_reaches_ready(
    env: dict[str, str], testbed: Testbed, tmp_path: Path
) -> None:
    path = recipe(tmp_path, "named-in-command", "vllm serve {model} --served-model-name in-the-command --port {port}")
    out = run(env, path, testbed)
    assert out["ready"] is True and out["served_model_name"] == "in-the-command"


def test_several_served_names_reach_ready_and_are_all_reported(
    env: dict[str, str], testbed: Testbed, tmp_path: Path
) -> None:
    path = recipe(tmp_path, "two-names", "vllm serve {model} --served-model-name first second --port {port}")
    out = run(env, path, testbed)
    assert out["ready"] is True and out["served_models"] == ["first", "second"]


def test_an_api_key_the_recipe_sets_is_used_by_readiness(env: dict[str, str], testbed: Testbed, tmp_path: Path) -> None:
    path = recipe(tmp_path, "keyed", "vllm serve {model} --port {port} --api-key rdy-s3cret")
    out = run(env, path, testbed)
    assert out["ready"] is True
    record = next((Path(env["SPARKRUN_CACHE_DIR"]) / "jobs").glob("*.json")).read_text()
    assert "rdy-s3cret" not in json.dumps(out) and "rdy-s3cret" not in record


@pytest.mark.parametrize(
    ("name", "command", "runtime", "env_block", "status"),
    [
        ("prefixed", "llama-server -m /dev/null --host {host} --port {port} --api-prefix /api", "llama-cpp", "", 404),
        ("hidden-key", "vllm serve {model} --port {port} --api-key $KEY", "vllm", "env:\n  KEY: zz-hidden\n", 401),
    ],
    ids=["route-404", "key-401"],
)
def test_a_4xx_answer_ends_readiness_at_once_with_the_engines_message(
    env: dict[str, str],
    testbed: Testbed,
    tmp_path: Path,
    name: str,
    command: str,
    runtime: str,
    env_block: str,
    status: int,
) -> None:
    path = recipe(tmp_path, name, command, runtime=runtime, env=env_block)
    t0 = time.monotonic()
    r = sparkrun(env, "run", path, "--cluster", "testbed", "-H", testbed.hosts[0], "--image", IMAGE, "--no-follow")
    elapsed = time.monotonic() - t0
    assert r.returncode == 5, r.stderr
    error = next(x for x in r.stderr.splitlines() if x.startswith("error:"))
    assert f"HTTP {status}" in error and ": readiness models: " in error, r.stderr
    assert "hint: " in r.stderr and "  | " in r.stderr  # the engine's own answer is shown
    assert elapsed < 30, f"readiness waited {elapsed:.0f}s instead of stopping at the first {status}"
    assert sparkrun_containers(testbed) == {}
