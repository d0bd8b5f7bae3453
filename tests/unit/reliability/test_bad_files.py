"""Bad recipes and config files never give a traceback: generated YAML (wrong types, missing keys, huge values, deep
nesting, `include:` cycles, broken UTF-8, not YAML at all) fed to the commands that read it. Each run ends with exit 0
or a documented code (never 1, the "bug" code), and a failure is one `error:` line that names the file (and, where a
key is at fault, the key), plus a hint. The CLI runs in this process (`sparkrun.cli.main`); nothing connects."""

from __future__ import annotations

import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reliability_report import CaseLog
from sparkrun.cli import main

EXAMPLES = 150
RECIPE_KEYS = [
    "model",
    "runtime",
    "defaults",
    "command",
    "container",
    "pre_exec",
    "include",
    "readiness",
    "env",
    "recipe_version",
    "mods",
]
RECIPE_KEYS += ["overrides", "min_nodes", "max_nodes", "metadata", "post_commands"]
CLUSTER_KEYS = ["name", "hosts", "ssh", "container", "hf_cache", "description"]
CONFIG_KEYS = ["default_cluster", "hosts", "ssh", "hf_cache", "lease_seconds"]
SUB_KEYS = [
    "user",
    "port",
    "options",
    "connect_timeout",
    "identity_file",
    "env",
    "ulimits",
    "docker_args",
    "gpus",
    "port_timeout",
]
SUB_KEYS += ["tensor_parallel", "served_model_name", "max_model_len", "entries"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["", "~", "{model}", "{{", "${HOME}", "$(id)", "-1", "1e999", "null", "x" * 5000]),
)


def documents(keys: list[str]) -> st.SearchStrategy[Any]:
    """A YAML document: mostly a mapping of known keys (right or wrong types), sometimes anything else."""
    values = st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.one_of(st.sampled_from(SUB_KEYS), st.text(max_size=6)), inner, max_size=4),
        ),
        max_leaves=12,
    )
    mapping = st.dictionaries(st.one_of(st.sampled_from(keys), st.text(max_size=8)), values, max_size=8)
    return st.one_of(mapping, mapping, mapping, values)


def raw_texts() -> st.SearchStrategy[bytes]:
    """Files that are not (valid) YAML: random bytes, broken UTF-8, YAML syntax errors, deep nesting, tabs."""
    return st.one_of(
        st.binary(max_size=200),
        st.text(alphabet=string.printable, max_size=200).map(str.encode),
        st.sampled_from(
            [
                b"\xff\xfe\xfd not utf-8",
                b"model: \xc3\x28\n",
                b"key: [unclosed\n",
                b"key: {a: 1\n",
                b"\tmodel: tab-indented\n",
                b"a: &x [*x]\n",
                b"[" * 5000 + b"]" * 5000,
                b"{a: " * 3000 + b"1" + b"}" * 3000,
                b"- " * 3000 + b"x\n",
                b"<HUGE>",  # replaced in the test (a 2 MB value), so a failure does not print it
                b"!!python/object/apply:os.system ['touch /tmp/yaml-canary']\n",
                b"%YAML 9.9\n---\na: 1\n",
                b"---\na: 1\n---\nb: 2\n",
            ]
        ),
    )


@dataclass
class Outcome:
    runs: int = 0
    failures: list[str] = field(default_factory=list)


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.outcome = Outcome()

    def __repr__(self) -> str:
        return "Cli(...)"

    def __call__(self, *args: str) -> tuple[int, str]:
        """Run `sparkrun ARGS`; check the contract; return (exit code, first error line)."""
        self.capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        self.outcome.runs += 1
        assert "Traceback" not in err and "Traceback" not in out, err
        assert code in (0, 2, 3, 7, 8), (code, args, err)  # never 1: a bug
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        if args[:2] == ("recipe", "validate") and code in (3, 8) and not errors:
            assert str(out).strip(), err  # the report lists each problem with file and line
        elif code not in {0, 2}:
            assert len(errors) == 1, err
            self.outcome.failures.append(errors[0])
        return code, errors[0] if errors else ""


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], reliability: CaseLog, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Cli]:
    runner = Cli(capsys)
    yield runner
    what = KINDS[request.node.originalname]
    reliability.case(
        what,
        suite="config",
        fault="generated: wrong types, missing keys, huge values, deep nesting, broken UTF-8, not YAML",
        checked="no traceback, exit 0 or a documented code (never 1); one error line naming the file",
        inputs=runner.outcome.runs,
        tracebacks=0,
        cause=runner.outcome.failures[0] if runner.outcome.failures else "",
    )


KINDS = {
    "test_generated_recipes": "generated recipe files (run --dry-run, show, recipe validate)",
    "test_unreadable_recipe_files": "recipe files that are not YAML or not UTF-8",
    "test_generated_cluster_files": "generated cluster files (cluster list/show, run --dry-run --cluster)",
    "test_generated_config_files": "generated config.yaml (cluster list, run --dry-run)",
    "test_include_cycles_and_chains": "recipes whose include: chains loop or run deep",
}
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)


def _write(path: Path, doc: Any) -> None:
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except (yaml.YAMLError, RecursionError):
        text = repr(doc)
    path.write_text(text, encoding="utf-8", errors="surrogateescape")


@SETTINGS
@example(doc={"model": ["not", "a", "string"]})
@example(doc={"defaults": {"port": "eighty"}})
@example(doc={"defaults": {"tensor_parallel": -3}, "model": "m", "runtime": "vllm"})
@example(doc={"runtime": "no-such-runtime", "model": "m"})
@example(doc={"recipe_version": 99, "model": "m"})
@example(doc=None)
@example(doc=[1, 2, 3])
@given(doc=documents(RECIPE_KEYS))
def test_generated_recipes(cli: Cli, tmp_path: Path, doc: Any) -> None:
    path = tmp_path / "generated.yaml"
    _write(path, doc)
    for args in (
        ("run", str(path), "--dry-run", "-H", "10.0.0.1"),
        ("show", str(path)),
        ("recipe", "validate", str(path)),
    ):
        _code, line = cli(*args)
        if line and "generated.yaml" not in line:
            # errors about values (not the file) name the key or the option instead
            assert ":" in line.removeprefix("error: "), line


@SETTINGS
@given(raw=raw_texts())
def test_unreadable_recipe_files(cli: Cli, tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "broken.yaml"
    path.write_bytes(b"model: " + b"x" * 2_000_000 + b"\n" if raw == b"<HUGE>" else raw)
    for args in (("run", str(path), "--dry-run", "-H", "10.0.0.1"), ("recipe", "validate", str(path))):
        _code, line = cli(*args)
        if line:
            assert "broken.yaml" in line, line
    assert not Path("/tmp/yaml-canary").exists()


@SETTINGS
@example(doc={"hosts": "not,a;list"})
@example(doc={"ssh": {"port": "twenty-two"}})
@example(doc={"container": {"docker_args": "not-a-list"}})
@example(doc={"hosts": [{"nested": 1}]})
@given(doc=documents(CLUSTER_KEYS))
def test_generated_cluster_files(cli: Cli, tmp_path: Path, doc: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config"
    (config / "clusters").mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("SPARKRUN_CONFIG_DIR", str(config))
    _write(config / "clusters" / "gen.yaml", doc)
    for args in (
        ("cluster", "show", "gen"),
        ("cluster", "list"),
        ("run", "qwen3-1.7b-vllm", "--dry-run", "--cluster", "gen"),
    ):
        code, line = cli(*args)
        if code == 3 and "gen.yaml" not in line:
            assert "cluster" in line or "--hosts" in line or ":" in line, line


@SETTINGS
@example(doc={"default_cluster": "missing"})
@example(doc={"lease_seconds": "soon"})
@example(doc={"ssh": ["a"]})
@given(doc=documents(CONFIG_KEYS))
def test_generated_config_files(cli: Cli, tmp_path: Path, doc: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    monkeypatch.setenv("SPARKRUN_CONFIG_DIR", str(config))
    _write(config / "config.yaml", doc)
    for args in (("cluster", "list"), ("run", "qwen3-1.7b-vllm", "--dry-run", "-H", "10.0.0.1")):
        cli(*args)


@pytest.mark.parametrize("depth", [2, 3, 20])
def test_include_cycles_and_chains(cli: Cli, tmp_path: Path, depth: int) -> None:
    names = [f"r{i}.yaml" for i in range(depth)]
    for i, name in enumerate(names):
        data = {"include": names[(i + 1) % depth], "model": "m", "runtime": "vllm"}
        (tmp_path / name).write_text(yaml.safe_dump(data))
    code, line = cli("run", str(tmp_path / names[0]), "--dry-run", "-H", "10.0.0.1")
    assert code == 3 and "include" in line and ".yaml" in line, line
