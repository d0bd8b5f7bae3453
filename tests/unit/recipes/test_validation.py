"""`recipe validate`: issues with severity, code, file:line and key; exit codes by severity."""

from __future__ import annotations

from pathlib import Path

import pytest
from recipe_fakes import SIMPLE, BrokenRuntime, FakeRuntimes, RejectingRuntime, recipe_from, write

from sparkrun.errors import ExitCode
from sparkrun.recipes.validate import Report, validate_recipe


def _report(text: str, runtimes: FakeRuntimes | None = None, path: Path | None = None) -> Report:
    return validate_recipe(recipe_from(text, path=path), runtimes or FakeRuntimes())


def _codes(report: Report) -> list[tuple[str, str]]:
    return [(i.severity, i.code) for i in report.issues]


def test_clean_recipe_has_no_issues() -> None:
    report = _report(SIMPLE)
    assert report.issues == () and report.runtime == "vllm-distributed"
    assert report.exit_code(strict=True) == ExitCode.OK


def test_unknown_runtime_uses_the_plugin_registry_message(tmp_path: Path) -> None:
    path = write(tmp_path / "ds4.yaml", "model: ~/x.gguf\nruntime: ds4-cuda\nlaunch: ds4-serve\n")
    report = _report(path.read_text(), path=path)
    error = next(i for i in report.issues if i.severity == "error")
    assert error.code == "unknown-runtime"
    assert error.message == "unknown runtime 'ds4-cuda': no installed plugin provides it"
    assert error.where == f"{path}:2" and error.key == "runtime"
    assert report.exit_code(strict=False) == ExitCode.INPUT


def test_unresolved_placeholders_are_errors_naming_each(tmp_path: Path) -> None:
    text = SIMPLE.replace("--max-model-len {max_model_len}", "--a {typo} --b {other.thing}")
    path = write(tmp_path / "r.yaml", text)
    report = _report(text, path=path)
    errors = [i for i in report.issues if i.severity == "error"]
    assert [i.message for i in errors] == [
        "placeholder {typo} names nothing (no default, -o option or runtime value)",
        "placeholder {other.thing} names nothing (no default, -o option or runtime value)",
    ]
    assert errors[0].line().startswith(f"{path}:8: command: placeholder {{typo}}")


def test_hook_placeholders_may_use_launch_values_but_not_unknown_names() -> None:
    ok = _report(SIMPLE + "post_exec:\n  - curl http://{head_ip}:{port}/v1/models\n")
    assert ok.issues == ()
    bad = _report(SIMPLE + "post_commands:\n  - echo {headip}\n")
    assert [(i.code, i.key) for i in bad.issues] == [("unresolved-placeholder", "post_commands[0]")]


def test_restated_model_arg_is_a_suggestion() -> None:
    report = _report(SIMPLE.replace("vllm serve {model}", "vllm serve org/model"))
    assert _codes(report) == [("suggestion", "restated-model-arg")]
    assert report.exit_code(strict=True) == ExitCode.OK


def test_unmapped_defaults_are_warnings_unless_used_or_spelled_out() -> None:
    extra = "  max_model_len: 4096\n  unused_knob: 3\n  trust_remote_code: true\n"
    text = SIMPLE.replace("  max_model_len: 4096\n", extra)
    text = text.replace("--host {host}", "--host {host} --trust-remote-code")
    report = _report(text)
    assert _codes(report) == [("warning", "unmapped-default")]
    assert report.issues[0].key == "defaults.unused_knob"
    assert report.exit_code(strict=False) == ExitCode.OK
    assert report.exit_code(strict=True) == ExitCode.WARNINGS


def test_without_command_the_runtime_mapping_decides() -> None:
    text = "model: m/x\nruntime: sglang\ndefaults:\n  max_num_seqs: 4\n  mystery: 1\n"
    report = _report(text)
    assert [i.message for i in report.issues] == ["runtime 'sglang' cannot map mystery: no effect on the serve command"]


def test_deprecated_and_informational_codes() -> None:
    text = SIMPLE + 'name: Fancy\nsolo_only: true\nenv:\n  HF_TOKEN: "${HF_TOKEN}"\nmin_sparkrun_version: "0.9"\n'
    assert sorted(_codes(_report(text))) == [
        ("suggestion", "declared-name-ignored"),
        ("warning", "deprecated-topology"),
        ("warning", "env-not-expanded"),
        ("warning", "newer-format"),
    ]


def test_parallelism_beyond_the_node_range_is_a_warning() -> None:
    text = SIMPLE.replace("  port: 8000\n", "  port: 8000\n  tensor_parallel: 4\n") + "max_nodes: 1\n"
    assert ("warning", "parallelism-exceeds-nodes") in _codes(_report(text))


def test_runtime_rejections_and_plugin_bugs_become_errors() -> None:
    rejected = _report(SIMPLE, FakeRuntimes({"vllm-distributed": RejectingRuntime()}))
    assert [(i.code, i.message) for i in rejected.issues] == [
        ("runtime-rejected", "the command sets --nnodes 4, but this launch needs 1")
    ]
    broken = _report(SIMPLE, FakeRuntimes({"vllm-distributed": BrokenRuntime()}))
    assert [i.code for i in broken.issues] == ["runtime-failed"]
    assert "ZeroDivisionError: plugin bug" in broken.issues[0].message


def test_untrusted_recipe_with_hooks_gets_a_needs_trust_suggestion() -> None:
    recipe = recipe_from(SIMPLE + "pre_exec: [echo hi]\n", trusted=False, kind="registry", registry="r")
    report = validate_recipe(recipe, FakeRuntimes())
    assert _codes(report) == [("suggestion", "needs-trust")]


@pytest.mark.parametrize(
    ("fail_on", "expected"),
    [(None, ExitCode.OK), ("none", ExitCode.OK), ("warning", ExitCode.WARNINGS), ("suggestion", ExitCode.WARNINGS)],
)
def test_fail_on_levels(fail_on: str | None, expected: ExitCode) -> None:
    report = _report(SIMPLE + "solo_only: true\n")
    assert report.exit_code(strict=False, fail_on=fail_on) == expected


def test_errors_sort_before_warnings_and_suggestions() -> None:
    text = SIMPLE.replace("{max_model_len}", "{nope}") + "name: other\nsolo_only: true\n"
    severities = [i.severity for i in _report(text).issues]
    assert severities == sorted(severities, key=["error", "warning", "suggestion"].index)


def test_parallelism_below_the_node_range_is_a_warning_naming_the_fix() -> None:
    report = _report(SIMPLE + "min_nodes: 2\n")
    assert _codes(report) == [("warning", "parallelism-below-nodes")]
    assert report.issues[0].hint == "pass --tp 2"


def test_executors_and_builders_sparkrun_ignores_are_warnings() -> None:
    report = _report(SIMPLE + "executor: k8s\nbuilder: uv-venv\n")
    assert sorted(_codes(report)) == [("warning", "unsupported-builder"), ("warning", "unsupported-executor")]
    assert _report(SIMPLE + "executor: docker\nbuilder: eugr\n").issues == ()


def test_wrong_types_of_keys_sparkrun_does_not_act_on_are_warnings() -> None:
    report = _report(SIMPLE + "metadata: [a]\ndescription: {a: 1}\ndistribution_config: [1]\n")
    assert _codes(report) == [("warning", "ignored-value")] * 3


def test_missing_mods_are_warnings_with_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", SIMPLE + "mods: [mods/fix-x]\n")
    report = validate_recipe(recipe_from(path.read_text(), path=path), FakeRuntimes())
    assert [(i.code, i.key) for i in report.issues] == [("missing-mod", "mods[0]")]
    assert "sparkrun registry update eugr" in (report.issues[0].hint or "")


def test_unknown_recipe_versions_are_read_as_v2_with_a_warning() -> None:
    assert _codes(_report(SIMPLE.replace('recipe_version: "2"', 'recipe_version: "7x"'))) == [
        ("warning", "invalid-recipe-version")
    ]
