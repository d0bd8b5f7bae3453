"""Concurrency on the test cluster: a second `run` that would collide with a running or starting job (same host and
port) is refused naming that job (or reused with `--ensure`); twenty CLI processes at once (runs, stops, status,
cluster changes, registry adds) leave every config and record file valid and no container behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from e2e.cli import IMAGE, ok, run_json, sparkrun
from e2e.faultkit import Run, error_line, job_containers, left_everywhere, stop_all, tracebacks, wait_until
from reliability_report import CaseLog
from testbed.harness import Testbed

pytestmark = pytest.mark.e2e

HELD = """\
recipe_version: "2"
model: Qwen/Qwen3-1.7B
runtime: vllm
defaults: {port: 8000, host: 0.0.0.0, served_model_name: held, tensor_parallel: 1, max_model_len: 8192}
pre_exec:
  - sleep 40
"""


@pytest.fixture
def env(sparkrun_env: dict[str, str], testbed: Testbed) -> Iterator[dict[str, str]]:
    yield dict(sparkrun_env, SPARKRUN_LEASE_SECONDS="8")
    stop_all(sparkrun_env)


def test_a_second_run_on_a_busy_host_and_port_is_refused_naming_the_job(
    env: dict[str, str], testbed: Testbed, tmp_path: Path, reliability: CaseLog
) -> None:
    h1, h2 = testbed.hosts[:2]
    first = run_json(env, "qwen3-1.7b-vllm", "--cluster", "testbed", "-H", h1, "--image", IMAGE)
    other = sparkrun(env, "run", "qwen3-1.7b-sglang", "--cluster", "testbed", "-H", h1, "--image", IMAGE, "--no-follow")
    again = run_json(env, "qwen3-1.7b-vllm", "--cluster", "testbed", "-H", h1, "--image", IMAGE, "--ensure")
    held = tmp_path / "held-start.yaml"
    held.write_text(HELD)
    starting = Run(env, (str(held), "--cluster", "testbed", "-H", h2, "--image", IMAGE, "--no-follow"))
    starting.wait_for("starting ")
    wait_until(lambda: bool(job_containers(testbed, h2)), 60, "the held job's container")
    starting_job = testbed.containers(h2)[0]["labels"]["sparkrun.job"]
    late = sparkrun(env, "run", "qwen3-1.7b-sglang", "--cluster", "testbed", "-H", h2, "--image", IMAGE, "--no-follow")
    running_line, starting_line = error_line(other.stderr), error_line(late.stderr)
    reliability.case(
        "a second run on the host and port of a running job",
        suite="concurrency",
        fault=f"qwen3-1.7b-sglang on {h1}:8000 while qwen3-1.7b-vllm serves there",
        checked="exit 4 naming the job that holds the port, before anything starts; --ensure reuses the job",
        exit_code=other.returncode,
        cause=running_line,
        tracebacks=tracebacks(other.stderr),
    )
    reliability.case(
        "a second run on the host and port of a starting job",
        suite="concurrency",
        fault=f"qwen3-1.7b-sglang on {h2}:8000 while another job is still starting there",
        checked="exit 4 naming the starting job",
        exit_code=late.returncode,
        cause=starting_line,
        tracebacks=tracebacks(late.stderr),
    )
    assert other.returncode == 4 and f"port 8000 is taken by job {first['job']}" in running_line, other.stderr
    assert f"sparkrun stop {first['job']}" in other.stderr  # the hint
    assert again["reused"] is True and again["job"] == first["job"]
    assert late.returncode == 4 and f"port 8000 is taken by job {starting_job} (held-start, starting)" in starting_line
    assert starting.finish(120) == 0, starting.stderr
    assert [c["labels"]["sparkrun.job"] for c in testbed.containers(h2)] == [starting_job]


def _repo(path: Path, name: str) -> str:
    (path / ".sparkrun").mkdir(parents=True)
    (path / ".sparkrun" / "registry.yaml").write_text(f"registries:\n  - name: {name}\n    recipes: recipes\n")
    (path / "recipes").mkdir()
    (path / "recipes" / "m.yaml").write_text("recipe_version: '2'\nmodel: org/model\nruntime: vllm\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    for cmd in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", "-C", str(path), *cmd], check=True, env=env, capture_output=True)
    return f"file://{path}"


def test_twenty_cli_processes_at_once_leave_valid_files_and_nothing_behind(
    env: dict[str, str], testbed: Testbed, tmp_path: Path, reliability: CaseLog
) -> None:
    hosts = testbed.hosts[:4]
    repos = [_repo(tmp_path / f"r{i}", f"reg{i}") for i in range(2)]
    base = ("--cluster", "testbed", "--image", IMAGE, "--no-follow")
    commands = [
        *(("run", "qwen3-1.7b-vllm", "-H", h, *base) for h in hosts),  # 4 jobs
        *(("run", "qwen3-1.7b-vllm", "-H", h, *base) for h in hosts[:2]),  # the same jobs again: busy or replaced
        *(("run", "qwen3-1.7b-sglang", "-H", h, *base) for h in hosts[2:]),  # other jobs, same host and port
        *(("status", "--json", "--cluster", "testbed") for _ in range(2)),
        *(("run", "qwen3-1.7b-vllm", "-H", h, "--dry-run", "--json") for h in hosts[:2]),
        *(("stop", "--all", "--cluster", "testbed", "--dry-run") for _ in range(2)),
        *(("cluster", "create", f"extra{i}", "-H", hosts[i]) for i in range(3)),
        ("cluster", "update", "testbed", "--description", "changed at once"),
        *(("registry", "add", url) for url in repos),
    ]
    assert len(commands) == 20
    pipes = {"stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    procs = [subprocess.Popen([sys.executable, "-m", "sparkrun", *c], env=env, text=True, **pipes) for c in commands]
    results = [(c, p.wait(timeout=300), *p.communicate()) for c, p in zip(commands, procs, strict=True)]
    stopped = sparkrun(env, "stop", "--all", "--cluster", "testbed")
    config, cache = Path(env["SPARKRUN_CONFIG_DIR"]), Path(env["SPARKRUN_CACHE_DIR"])
    bad_files = []
    for path in [*config.rglob("*.yaml"), *cache.glob("jobs/*.json"), *cache.glob("pending/*.json")]:
        try:
            data = yaml.safe_load(path.read_text()) if path.suffix == ".yaml" else json.loads(path.read_text())
            assert isinstance(data, dict)
        except (ValueError, AssertionError, yaml.YAMLError):
            bad_files.append(str(path))
    traces = sum(tracebacks(err, out) for _c, _code, out, err in results)
    unexplained = [
        (" ".join(c[:3]), code, err[-300:])
        for c, code, _out, err in results
        if code not in (0, 3, 4) or (code != 0 and len([x for x in err.splitlines() if x.startswith("error:")]) != 1)
    ]
    reliability.case(
        "20 CLI processes at once on the test cluster",
        suite="concurrency",
        fault="8 runs (some on the same host and port), 2 dry-runs, 2 status, 2 stop --dry-run, 3 cluster create, "
        "1 cluster update, 2 registry add",
        checked="every config and record file valid; each failure one line (exit 3/4); stop --all leaves 0",
        inputs=20,
        containers_left=left_everywhere(testbed),
        tracebacks=traces,
        cause=str(unexplained[0]) if unexplained else "",
    )
    assert traces == 0 and not bad_files, (bad_files, results)
    assert not unexplained, unexplained
    assert stopped.returncode == 0, stopped.stderr
    assert left_everywhere(testbed) == 0
    assert sum(1 for c, code, _o, _e in results if c[0] == "run" and code == 0) >= len(hosts)
    assert ok(env, "cluster", "list").returncode == 0
