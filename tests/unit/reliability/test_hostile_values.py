"""Hostile input in every value that reaches a host, property-based (hypothesis): shell syntax (`$()`, backticks,
`;`, `&&`, `|`), quotes, newlines and other control characters, unicode, leading dashes, globs, NUL and very long
strings, fed as: the served model name, `-o` values, `-e` values, `--label` values, arguments after `--`, the model id,
recipe defaults, values substituted into hooks, secrets (HF_TOKEN), cluster env, the image, host names, SSH users,
cache paths, identity files, cluster names and hosts-file paths.

Each value is either refused before any connection (a `SparkrunError` with exit code 3 and a one-line message, and
the transport never called) or arrives literally: the `docker run` argv launch.sh executes is exactly the one planned,
the engine gets the value as one whole argument, the private env file holds it as one line, a hook sees it as data.
And the canary file a hostile value would create, if any shell evaluated it, never appears."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from hostile_kit import EXAMPLES, HOSTILE, Sandbox, dump, expected_docker_argv
from hypothesis import HealthCheck, example, given, settings

from reliability_report import CaseLog
from sparkrun.api import RecipeInput, Session, Target
from sparkrun.errors import ExitCode, SparkrunError
from sparkrun.jobs.records import JobStore
from sparkrun.launch.planner import JobPlan
from sparkrun.transport.fake import FakeTransport
from sparkrun.transport.ssh import SshTransport

IMAGE = "sparkrun-test/engine:latest"
PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_.]*\}")  # a setting's value may reference others: {port}
BUNDLED = Path(__file__).resolve().parents[3] / "recipes" / "qwen3-1.7b-vllm.yaml"
EXAMPLES_PER_CHANNEL = 25


@dataclass
class Tally:
    tried: int = 0
    refused: int = 0
    literal: int = 0
    refusals: list[str] = field(default_factory=list)


class World:
    """One test's sandbox: a config dir, a session whose transport records any connection, the stubs. (A plain
    class: hypothesis prints a failing example's arguments, and this one has nothing worth printing.)"""

    def __init__(self, sandbox: Sandbox, config: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sandbox, self.config, self.tmp, self.monkeypatch = sandbox, config, tmp, monkeypatch
        self.tally = Tally()

    def __repr__(self) -> str:
        return "World(...)"

    def session(self) -> tuple[Session, FakeTransport]:
        transport = FakeTransport()
        return Session(transport=transport, store=JobStore(self.tmp / "cache")), transport

    def recipe(self, *, template: bool = False, **fields: Any) -> str:
        """The bundled recipe with `fields` changed; without its `command:` template (the runtime builds the argv
        from the settings) unless `template`."""
        data = yaml.safe_load(BUNDLED.read_text())
        if not template:
            data.pop("command")
        data.update(fields)
        path = self.tmp / "hostile-recipe.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=False))
        return str(path)

    def cluster(self, **fields: Any) -> str:
        data: dict[str, Any] = {"name": "c", "hosts": ["10.0.0.1"], **fields}
        (self.config / "clusters").mkdir(parents=True, exist_ok=True)
        (self.config / "clusters" / "c.yaml").write_text(yaml.safe_dump(data, allow_unicode=False))
        return "c"


CHANNELS = {
    "test_served_model_name": "--served-model-name",
    "test_dash_o_values": "-o served_model_name=VALUE",
    "test_arguments_after_double_dash": "sparkrun run RECIPE -- --x VALUE",
    "test_model_id_in_a_recipe": "model: VALUE in a recipe file",
    "test_recipe_defaults": "defaults: {served_model_name: VALUE} in a recipe file",
    "test_dash_e_values_and_keys": "-e MY_VAR=VALUE and -e VALUE=1",
    "test_label_values_and_keys": "--label team=VALUE and --label VALUE=1",
    "test_secrets_from_the_environment": "HF_TOKEN=VALUE in the environment",
    "test_cluster_env": "a cluster's container env CL: VALUE",
    "test_values_substituted_into_command": "command: ... --served-model-name {served_model_name}, VALUE",
    "test_values_substituted_into_hooks": "pre_exec: printf %s {served_model_name}, served_model_name: VALUE",
    "test_image": "--image VALUE",
    "test_host_names": "-H VALUE",
    "test_ssh_users_and_identity_files": "a cluster's ssh.user / ssh.identity_file VALUE",
    "test_cache_paths": "a cluster's hf_cache VALUE",
    "test_cluster_names_and_hosts_file_paths": "--cluster VALUE, --hosts-file VALUE",
}


@pytest.fixture
def world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reliability: CaseLog, request: pytest.FixtureRequest
) -> Iterator[World]:
    config = tmp_path / "config"
    monkeypatch.setenv("SPARKRUN_CONFIG_DIR", str(config))
    w = World(Sandbox.make(tmp_path / "sandbox"), config, tmp_path, monkeypatch)
    yield w
    name = request.node.originalname
    record(reliability, w, name.removeprefix("test_").replace("_", " "), CHANNELS[name])


def attempt(w: World, raw: str, plan: Callable[[str], tuple[RecipeInput, Target]]) -> JobPlan | None:
    """Plan with the hostile value; None when it was refused (and checked to be refused properly)."""
    w.sandbox.reset()
    value = w.sandbox.value(raw)
    w.tally.tried += 1
    session, transport = w.session()
    try:
        given_, target = plan(value)
        job = session.plan_run(given_, target).job
    except SparkrunError as exc:
        assert exc.exit_code == ExitCode.INPUT, (type(exc).__name__, str(exc))
        assert "\n" not in str(exc) and str(exc).strip(), repr(str(exc))
        assert transport.scripts == []  # refused before any connection
        w.tally.refused += 1
        w.tally.refusals.append(str(exc)[:120])
        return None
    assert transport.scripts == []  # a plan opens no connection
    return job


def literal_launch(w: World, job: JobPlan) -> list[str]:
    """launch.sh runs exactly the planned `docker run`; nothing was evaluated."""
    got = w.sandbox.run_launch(job)
    assert got == expected_docker_argv(job.api_rank), dump(job)
    assert not w.sandbox.canary.exists()
    w.tally.literal += 1
    return got


def engine_argv(w: World, job: JobPlan) -> list[str]:
    got = w.sandbox.run_engine(job.api_rank)
    assert not w.sandbox.canary.exists()
    return got


def following(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def record(reliability: CaseLog, w: World, name: str, channel: str) -> None:
    reliability.case(
        f"hostile {name}",
        suite="hostile",
        fault=channel,
        checked=f"{w.tally.tried} values: {w.tally.refused} refused before any connection with one line (exit 3), "
        f"{w.tally.literal} passed literally (docker argv, engine argv, env file); no canary",
        inputs=w.tally.tried,
        cause=w.tally.refusals[0] if w.tally.refusals else "",
    )


def solo(value_target: str = "10.0.0.1", **kw: Any) -> Target:
    return Target(hosts=value_target, **kw)


SETTINGS = settings(
    max_examples=EXAMPLES_PER_CHANNEL,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)


def _examples(test: Callable[..., None]) -> Callable[..., None]:
    for text in EXAMPLES:
        test = example(raw=text)(test)
    return test


# ---- values that become arguments of the engine ----------------------------------------------------------------


@SETTINGS
@_examples
@given(raw=HOSTILE)
def test_served_model_name(world: World, raw: str) -> None:
    job = attempt(
        world, raw, lambda v: (RecipeInput(world.recipe(), values={"served_model_name": v}, image=IMAGE), solo())
    )
    if job is not None:
        literal_launch(world, job)
        assert following(engine_argv(world, job), "--served-model-name") == job.served_model_name


@SETTINGS
@_examples
@given(raw=HOSTILE)
def test_dash_o_values(world: World, raw: str) -> None:
    job = attempt(
        world, raw, lambda v: (RecipeInput(world.recipe(), options=(f"served_model_name={v}",), image=IMAGE), solo())
    )
    if job is not None:
        literal_launch(world, job)
        assert following(engine_argv(world, job), "--served-model-name") == world.sandbox.value(raw)


@SETTINGS
@_examples
@given(raw=HOSTILE)
def test_arguments_after_double_dash(world: World, raw: str) -> None:
    job = attempt(world, raw, lambda v: (RecipeInput("qwen3-1.7b-vllm", image=IMAGE, extra_args=("--x", v)), solo()))
    if job is not None:
        literal_launch(world, job)
        assert engine_argv(world, job)[-2:] == ["--x", world.sandbox.value(raw)]


@SETTINGS
@_examples
@given(raw=HOSTILE)
def test_model_id_in_a_recipe(world: World, raw: str) -> None:
    job = attempt(world, raw, lambda v: (RecipeInput(world.recipe(model=v), image=IMAGE), solo()))
    if job is not None:
        docker = literal_launch(world, job)
        assert f"sparkrun.model={job.model}" in docker
        assert job.model in engine_argv(world, job)


@SETTINGS
@_examples
@given(raw=HOSTILE)
def test_recipe_defaults(world: World, raw: str) -> None:
    defaults = {**yaml.safe_load(BUNDLED.read_text())["defaults"]}

    def plan(v: str) -> tuple[RecipeInput, Target]:
        return RecipeInput(world.recipe(defaults={**defaults, "served_model_name": v}), image=IMAGE), solo()

    job = attempt(world, raw, plan)
    if job is not None:
        literal_launch(world, job)
        assert following(engine_argv(world, job), "--served-model-name") == job.served_model_name


# ---- values that become container environment, labels, secrets ---------------------------------------------------


@SETTINGS
@_examples
@given(raw=HOSTILE)
def test_dash_e_values_and_keys(world: World, raw: str) -> None:
    job = attempt(world, raw, lambda v: (RecipeInput("qwen3-1.7b-vllm", image=IMAGE, env=(f"MY_VAR={v}",)), solo()))
    if job is not None:
        docker = literal_launch(world, job)
        assert f"MY_VAR={world.sandbox.value(raw)}" in docker
    key_job = attempt(world, raw, lambda v: (RecipeInput("qwen3-1.7b-vllm", image=IMAGE, env=(f"{v}=1",)), solo()))
    if key_job is not None:
        literal_launch(world, key_job)


@SETTINGS
@_examples
@given(raw=HOSTILE)
def test_label_values_and_keys(world: World, raw: str) -> None:
    job = attempt(world, raw, lambda v: (RecipeInput("qwen3-1.7b-vllm", image=IMAGE, labels=(f"team={v}",)), solo()))
    if job is not None:
        docker = literal_launch(world, job)
        value = world.sandbox.value(raw)
        assert f"sparkrun.team={value}" in docker or value == ""  # an empty label is left out
    key_job = attempt(world, raw, lambda v: (RecipeInput("qwen3-1.7b-vllm", image=IMAGE, labels=(f"{v}=1",)), solo()))
    if key_job is not None:
        literal_launch(world, key_job)
        assert key_job.job == key_job.api_rank.container.labels[0][1]  # sparkrun.job is still the job


@SETTINGS
@_examples
@given(raw=HOSTILE)
def test_secrets_from_the_environment(world: World, raw: str) -> None:
    value = world.sandbox.value(raw)
    if not value or "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        return  # no environment can hold it: it never reaches sparkrun
    world.monkeypatch.setenv("HF_TOKEN", value)
    job = attempt(world, raw, lambda v: (RecipeInput("qwen3-1.7b-vllm", image=IMAGE), solo()))
    if job is not None:
        docker = literal_launch(world, job)
        assert world.sandbox.env_file() == f"HF_TOKEN={value}\n".encode()
        assert "--env-file" in docker and not any(arg.startswith("HF_TOKEN") for arg in docker)


@SETTINGS
@_examples
@given(raw=HOSTILE)
def test_cluster_env(world: World, raw: str) -> None:
    def plan(v: str) -> tuple[RecipeInput, Target]:
        return RecipeInput("qwen3-1.7b-vllm", image=IMAGE), Target(cluster=world.cluster(container={"env": {"CL": v}}))

    job = attempt(world, raw, plan)
    if job is not None:
        assert f"CL={world.sandbox.value(raw)}" in literal_launch(world, job)


# ---- templates: `command:` and hooks ------------------------------------------------------------------------------

TEMPLATE_GAP = (
    "values substituted into `command:` are not quoted: a value with a space becomes several arguments, and "
    "`$(...)`/backticks make the command need a shell that runs them in the container (a `-o` or "
    "`--served-model-name` value included). Quoting them would break recipes of the older tool that rely on "
    "word splitting (`{extra_args}`): a recipe-layer decision; remove this mark when values arrive as one literal word"
)


@pytest.mark.xfail(strict=True, reason=TEMPLATE_GAP)
@SETTINGS
@_examples
@given(raw=HOSTILE)
def test_values_substituted_into_command(world: World, raw: str) -> None:
    job = attempt(
        world, raw, lambda v: (RecipeInput("qwen3-1.7b-vllm", values={"served_model_name": v}, image=IMAGE), solo())
    )
    if job is not None:
        literal_launch(world, job)
        assert following(engine_argv(world, job), "--served-model-name") == job.served_model_name


@SETTINGS
@_examples
@given(raw=HOSTILE)
def test_values_substituted_into_hooks(world: World, raw: str) -> None:
    defaults = {**yaml.safe_load(BUNDLED.read_text())["defaults"]}

    def plan(v: str) -> tuple[RecipeInput, Target]:
        hook = 'printf %s {served_model_name} > "$HOOK_OUT"'
        path = world.recipe(defaults={**defaults, "served_model_name": v}, pre_exec=[hook])
        return RecipeInput(path, image=IMAGE), solo()

    job = attempt(world, raw, plan)
    if job is not None and not PLACEHOLDER.search(raw):  # `{name}` in a setting is a template by design
        literal_launch(world, job)
        assert world.sandbox.hook_output() == job.served_model_name


# ---- what reaches SSH and docker options --------------------------------------------------------------------------


@SETTINGS
@_examples
@given(raw=HOSTILE)
def test_image(world: World, raw: str) -> None:
    job = attempt(world, raw, lambda v: (RecipeInput("qwen3-1.7b-vllm", image=v), solo()))
    if job is not None and raw:  # an empty --image means the recipe's
        docker = literal_launch(world, job)
        assert docker[docker.index("--entrypoint") + 2] == world.sandbox.value(raw)
        assert not world.sandbox.value(raw).startswith("-")


class _NoMkdir(SshTransport):
    def __init__(self) -> None:
        super().__init__(control_dir=Path("/nonexistent-cm"))

    def _ensure_control_dir(self) -> None:
        return None


@SETTINGS
@_examples
@given(raw=HOSTILE)
def test_host_names(world: World, raw: str) -> None:
    job = attempt(world, raw, lambda v: (RecipeInput("qwen3-1.7b-vllm", image=IMAGE), Target(hosts=v)))
    if job is not None:
        for rank in job.ranks:
            argv = _NoMkdir().argv(rank.host, "CMD")
            assert argv[-3:] == ["--", rank.host.address, "CMD"] and not rank.host.address.startswith("-")
        world.tally.literal += 1


@SETTINGS
@_examples
@given(raw=HOSTILE)
def test_ssh_users_and_identity_files(world: World, raw: str) -> None:
    job = attempt(
        world,
        raw,
        lambda v: (RecipeInput("qwen3-1.7b-vllm", image=IMAGE), Target(cluster=world.cluster(ssh={"user": v}))),
    )
    if job is not None and raw:  # an empty user means "not set"
        argv = _NoMkdir().argv(job.api_rank.host, "CMD")
        assert following(argv, "-l") == world.sandbox.value(raw)
        world.tally.literal += 1
    job = attempt(
        world,
        raw,
        lambda v: (
            RecipeInput("qwen3-1.7b-vllm", image=IMAGE),
            Target(cluster=world.cluster(ssh={"identity_file": v})),
        ),
    )
    if job is not None and raw:
        argv = _NoMkdir().argv(job.api_rank.host, "CMD")
        assert following(argv, "-i") == os.path.expanduser(world.sandbox.value(raw))
        world.tally.literal += 1


@SETTINGS
@_examples
@given(raw=HOSTILE)
def test_cache_paths(world: World, raw: str) -> None:
    job = attempt(
        world, raw, lambda v: (RecipeInput("qwen3-1.7b-vllm", image=IMAGE), Target(cluster=world.cluster(hf_cache=v)))
    )
    if job is not None:
        docker = literal_launch(world, job)
        assert f"{world.sandbox.value(raw) or '~/.cache/huggingface'}:/cache/huggingface" in docker


@SETTINGS
@_examples
@given(raw=HOSTILE)
def test_cluster_names_and_hosts_file_paths(world: World, raw: str) -> None:
    if not raw:
        return  # not given: the default hosts apply
    assert attempt(world, raw, lambda v: (RecipeInput("qwen3-1.7b-vllm", image=IMAGE), Target(cluster=v))) is None
    assert attempt(world, raw, lambda v: (RecipeInput("qwen3-1.7b-vllm", image=IMAGE), Target(hosts_file=v))) is None
