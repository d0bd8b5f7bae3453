"""Recipe hooks and mods on the test cluster: they run where and when they should, failures name the hook, and an
untrusted recipe cannot run them without --trust."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.cli import IMAGE, ok, run_json, sparkrun, sparkrun_containers
from testbed.harness import Testbed

pytestmark = pytest.mark.e2e


@pytest.fixture
def env(sparkrun_env: dict[str, str], testbed: Testbed) -> Iterator[dict[str, str]]:
    yield sparkrun_env
    sparkrun(sparkrun_env, "stop", "--all", "--cluster", "testbed")


def write_recipe(directory: Path, body: str) -> Path:
    path = directory / "hooked.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def container_file(testbed: Testbed, host: str, path: str) -> str:
    (name,) = sparkrun_containers(testbed)[host]
    return testbed.docker(host, "exec", name, "cat", path).stdout


def test_mods_and_pre_exec_run_in_every_container_before_the_engine_and_post_hooks_after(
    env: dict[str, str], testbed: Testbed, tmp_path: Path
) -> None:
    mod = tmp_path / "mods" / "add-marker"
    mod.mkdir(parents=True)
    (mod / "run.sh").write_text('#!/bin/bash\necho "mod ran in $WORKSPACE_DIR" > /tmp/mod-marker\n')
    control_marker = tmp_path / "post-commands-marker"
    recipe = write_recipe(
        tmp_path,
        f"""\
        recipe_version: "2"
        model: Qwen/Qwen3-1.7B
        runtime: vllm
        defaults:
          port: 8000
          tensor_parallel: 2
        mods:
          - mods/add-marker
        pre_exec:
          - echo "pre rank $SPARKRUN_NODE_RANK in {{container_name}}" > /tmp/pre-marker
          - command: test -s /tmp/mod-marker
            timeout: 30
        post_exec:
          - wget -qO- http://127.0.0.1:{{port}}/v1/models > /tmp/post-marker
        post_commands:
          - echo "{{head_ip}} {{port}}" > {control_marker}
        """,
    )
    out = run_json(env, str(recipe), "--cluster", "testbed", "--image", IMAGE)
    assert out["ready"] is True
    head, worker = out["hosts"]
    for rank, host in enumerate((head, worker)):
        assert container_file(testbed, host, "/tmp/mod-marker").startswith("mod ran in")
        pre = container_file(testbed, host, "/tmp/pre-marker")
        assert pre.startswith(f"pre rank {rank} in sparkrun_{out['job']}_")
    assert json.loads(container_file(testbed, head, "/tmp/post-marker"))["data"]
    assert control_marker.read_text().split() == [head, "8000"]
    # The engine is still each container's main process (gate.sh exec'd into it): docker logs shows it.
    logs = ok(env, "logs", str(out["job"]), "--cluster", "testbed", "-n", "all").stdout
    assert "Starting vLLM API server" in logs


def test_a_failing_pre_exec_hook_fails_the_run_naming_it_and_removes_the_job(
    env: dict[str, str], testbed: Testbed, tmp_path: Path
) -> None:
    recipe = write_recipe(
        tmp_path,
        """\
        recipe_version: "2"
        model: Qwen/Qwen3-1.7B
        runtime: vllm
        pre_exec:
          - echo about to fail; exit 3
        """,
    )
    r = sparkrun(env, "run", str(recipe), "--cluster", "testbed", "--image", IMAGE, "--no-follow")
    assert r.returncode == 5, r.stderr
    assert f"error: {testbed.hosts[0]}: pre_exec[0]: exited with status 3" in r.stderr
    assert "  | about to fail" in r.stderr
    assert sparkrun_containers(testbed) == {}


def test_a_hook_that_outlives_its_timeout_is_stopped(env: dict[str, str], testbed: Testbed, tmp_path: Path) -> None:
    recipe = write_recipe(
        tmp_path,
        """\
        recipe_version: "2"
        model: Qwen/Qwen3-1.7B
        runtime: vllm
        pre_exec:
          - command: sleep 60
            timeout: 2
        """,
    )
    r = sparkrun(env, "run", str(recipe), "--cluster", "testbed", "--image", IMAGE, "--no-follow", timeout=60)
    assert r.returncode == 5, r.stderr
    assert "pre_exec[0]: timed out after 2s" in r.stderr
    assert sparkrun_containers(testbed) == {}


def test_an_untrusted_recipe_with_hooks_is_refused_without_trust(env: dict[str, str], testbed: Testbed) -> None:
    # A recipe from a registry nobody trusted: a local git repository added as a registry.
    import subprocess

    repo = Path(env["HOME"]) / "registry-repo"
    (repo / ".sparkrun").mkdir(parents=True)
    (repo / "recipes").mkdir()
    (repo / ".sparkrun" / "registry.yaml").write_text("registries:\n  - name: lab\n    recipes: recipes\n")
    (repo / "recipes" / "hooked.yaml").write_text(
        'recipe_version: "2"\nmodel: Qwen/Qwen3-1.7B\nruntime: vllm\npre_exec:\n  - touch /tmp/should-not-run\n'
    )
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "-C", str(repo), "add", "."], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-qm", "r"], check=True)
    ok(env, "registry", "add", f"file://{repo}")

    r = sparkrun(env, "run", "@lab/hooked", "--cluster", "testbed", "--image", IMAGE, "--no-follow")
    assert r.returncode == 7, r.stderr
    assert "--trust" in r.stderr
    assert sparkrun_containers(testbed) == {}  # refused before touching any host

    out = run_json(env, "@lab/hooked", "--cluster", "testbed", "--image", IMAGE, "--trust")
    assert out["ready"] is True
