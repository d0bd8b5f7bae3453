"""`run --json` and `status --json` on the test cluster match the JSON Schemas published on the documentation site
(website/docs/reference/schemas/; the host-free outputs are checked in tests/docs/test_json_schemas.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from docs.doc_schemas import problems
from e2e.cli import IMAGE, run_json, sparkrun, status_json
from testbed.harness import Testbed

pytestmark = pytest.mark.e2e

UNREACHABLE = "10.213.0.201"  # inside the testbed subnet, held by no host


@pytest.fixture
def env(sparkrun_env: dict[str, str], testbed: Testbed) -> Iterator[dict[str, str]]:
    yield sparkrun_env
    sparkrun(sparkrun_env, "stop", "--all", "--cluster", "testbed")


def test_run_and_status_json_match_their_documented_schemas(env: dict[str, str], testbed: Testbed) -> None:
    launched = run_json(env, "qwen3-1.7b-vllm", "--cluster", "testbed", "--tp", "2", "--image", IMAGE)
    assert problems("run", launched) == []
    assert launched["ready"] is True and len(launched["hosts"]) == 2

    status = status_json(env, "--cluster", "testbed")
    assert problems("status", status) == []
    (job,) = [j for j in status["jobs"] if j["job"] == launched["job"]]
    assert job["state"] == "running" and len(job["containers"]) == 2

    # A host that does not answer is part of the document too (exit 6).
    partial = status_json(env, "-H", ",".join([*testbed.hosts[:2], UNREACHABLE]))
    assert problems("status", partial) == []
    assert [h["host"] for h in partial["hosts"] if not h["reachable"] and h["error"]] == [UNREACHABLE]
