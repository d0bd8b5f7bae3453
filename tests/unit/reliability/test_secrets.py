"""Secrets from every source (HF_TOKEN in the environment, `-e MY_API_KEY=...`, a cluster's env, a recipe's env) never
appear in a dry-run (text, --json, --markdown), in any script text sent to a host (they travel on stdin only), in
progress events, in the result's JSON, or in the job record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from reliability_report import CaseLog
from sparkrun.api import RecipeInput, Session, Target
from sparkrun.cli import main
from sparkrun.core.events import Event
from sparkrun.hosts import Host
from sparkrun.jobs.records import JobStore
from sparkrun.shell import Script
from sparkrun.transport.fake import FakeTransport, events

IMAGE = "sparkrun-test/engine:latest"
BUNDLED = Path(__file__).resolve().parents[3] / "recipes" / "qwen3-1.7b-vllm.yaml"
SECRETS = {
    "HF_TOKEN": "hf_envSECRETvalue0001",
    "MY_API_KEY": "cliSECRETvalue0002",
    "DB_PASSWORD": "clusterSECRETvalue0003",
    "RECIPE_TOKEN": "recipeSECRETvalue0004",
}


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.setenv("HF_TOKEN", SECRETS["HF_TOKEN"])
    config = Path(str(tmp_path / "config"))
    monkeypatch.setenv("SPARKRUN_CONFIG_DIR", str(config))
    (config / "clusters").mkdir(parents=True)
    env = {"DB_PASSWORD": SECRETS["DB_PASSWORD"]}
    cluster = {"name": "c", "hosts": ["10.0.0.1", "10.0.0.2"], "container": {"env": env}}
    (config / "clusters" / "c.yaml").write_text(yaml.safe_dump(cluster))
    recipe = yaml.safe_load(BUNDLED.read_text())
    recipe["env"] = {"RECIPE_TOKEN": SECRETS["RECIPE_TOKEN"]}
    path = tmp_path / "secret-recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path), "c"


def cli(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def dry(fmt: tuple[str, ...]) -> list[str]:
    return ["--dry-run", *fmt]


def leaks(*texts: str) -> list[str]:
    return [name for name, value in SECRETS.items() if any(value in t for t in texts)]


def test_the_dry_run_in_every_format_shows_no_secret(
    setup: tuple[str, str], capsys: pytest.CaptureFixture[str], reliability: CaseLog
) -> None:
    recipe, cluster = setup
    shown = []
    for fmt in ((), ("--json",), ("--markdown",)):
        secret_opt = ["-e", f"MY_API_KEY={SECRETS['MY_API_KEY']}"]
        assert cli(["run", recipe, "--cluster", cluster, "--tp", "2", *secret_opt, *dry(fmt)]) == 0
        out, err = capsys.readouterr()
        shown.append(out + err)
    found = leaks(*shown)
    reliability.case(
        "secrets in the dry-run (text, --json, --markdown)",
        suite="secrets",
        fault="HF_TOKEN in the environment, -e MY_API_KEY, a cluster's env DB_PASSWORD, a recipe's env RECIPE_TOKEN",
        checked="no secret value in any output; their names listed as secret_env",
        inputs=4,
        secrets_leaked=len(found),
    )
    assert found == []
    plan = json.loads(shown[1])
    assert set(plan["ranks"][0]["secret_env"]) == set(SECRETS)


def test_a_run_sends_secrets_on_stdin_only_and_records_none(
    setup: tuple[str, str], tmp_path: Path, reliability: CaseLog
) -> None:
    recipe, cluster = setup

    def probe(host: Host, script: Script) -> str:
        return events(("docker", "ok 27"), ("home", "/root"), ("curl", "yes"), ("image", f"{IMAGE} sha256:1"))

    t = FakeTransport({"probe": probe, "lease": events(("lease", "active 0")), "readiness": events(("ready", "1"))})
    seen: list[Event] = []
    traced: list[str] = []
    store = JobStore(tmp_path / "cache")
    session = Session(emit=seen.append, transport=t, store=store, trace=traced.append)
    # The launch's own channels; what distribution sends (HF_TOKEN on model_recv.sh's stdin) has tests of its own.
    secret_env = (f"MY_API_KEY={SECRETS['MY_API_KEY']}",)
    given = RecipeInput(recipe, values={"tensor_parallel": 2}, env=secret_env, sync=False)
    result = session.run(given, Target(cluster=cluster))
    texts = [s.text for _h, s in t.scripts]
    stdin = b"".join(s.stdin for _h, s in t.scripts if s.name == "launch").decode()
    record = json.dumps(store.load(result.job.job))
    outputs = [json.dumps(e.to_json()) for e in seen] + [json.dumps(result.to_json()), record, *traced]
    found = leaks(*texts, *outputs)
    reliability.case(
        "secrets during a run",
        suite="secrets",
        fault="the same four secrets, a two-host launch",
        checked="no secret in any script text (argv of nothing), event, result, -v trace or job record; each "
        "reaches the launch script's stdin (docker run --env-file /dev/stdin)",
        inputs=4,
        secrets_leaked=len(found),
    )
    assert found == []
    assert all(f"{k}={v}\n" in stdin for k, v in SECRETS.items())


def test_show_masks_secrets_in_a_recipes_env(
    setup: tuple[str, str], capsys: pytest.CaptureFixture[str], reliability: CaseLog
) -> None:
    recipe, _cluster = setup
    reliability.case(
        "secrets in `sparkrun show`",
        suite="secrets",
        fault="a recipe's env RECIPE_TOKEN",
        checked="`show` and `show --json` print no secret value",
        inputs=1,
    )
    for fmt in ((), ("--json",)):
        assert cli(["show", recipe, *fmt]) == 0
        out, err = capsys.readouterr()
        assert leaks(out, err) == []
