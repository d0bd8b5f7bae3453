"""Every `sparkrun …` line in the README, recipes/README.md, the documentation site and the Claude Code plugin is a
valid use of the real CLI: the command path exists, every option exists and gets a valid value, the required
arguments are there. Checked through Click introspection (nothing runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from docs.doc_examples import ROOT, Example, all_examples, check_example, documentation_files, examples_in

# Interfaces the documentation describes while they are being built elsewhere. Each entry makes the examples that use
# it xfail(strict=True): once the interface exists the test passes unexpectedly and fails, and the entry goes.
PENDING: dict[str, str] = {}  # command -> why; empty: every command the documentation shows exists


def _pending(example: Example) -> str | None:
    words = example.text.split()
    command = next((w for w in words[1:] if not w.startswith("-")), "")
    return PENDING.get(command)


def _params() -> list[object]:
    params: list[object] = []
    for example in all_examples():
        reason = _pending(example)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(example, id=example.id, marks=marks))
    return params


@pytest.mark.parametrize("example", _params())
def test_documented_command_line_is_valid_for_the_real_cli(example: Example) -> None:
    problems = check_example(example.text, span=example.span)
    assert not problems, f"{example.source}:{example.line}: {example.text}\n" + "\n".join(problems)


def test_every_documentation_source_contributes_examples() -> None:
    # A change to the extraction that silently finds nothing must fail here, not pass 0 examples.
    counts = {str(p.relative_to(ROOT)): len(examples_in(p)) for p in documentation_files()}
    must_have = ["README.md", "recipes/README.md", "website/docs/quickstart.md", "website/docs/clusters.md"]
    must_have += [f"sparkrun-cc-plugin/commands/{c}.md" for c in ("run", "stop", "status", "logs", "list", "show")]
    must_have += [f"sparkrun-cc-plugin/commands/{c}.md" for c in ("setup", "sync")]
    must_have += ["website/docs/distribution.md", "website/docs/setup.md"]
    must_have += [f"sparkrun-cc-plugin/skills/{s}/SKILL.md" for s in ("run", "setup", "registry")]
    assert [f for f in must_have if not counts.get(f)] == []


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("sparkrun run qwen --tpp 2", "has no option --tpp"),
        ("sparkrun nope", "no command `sparkrun nope`"),
        ("sparkrun cluster frobnicate lab", "no command `sparkrun cluster frobnicate`"),
        ("sparkrun recipe validate r.yaml --fail-on maybe", "is not one of"),
        ("sparkrun run qwen --tp two", "is not a valid integer"),
        ("sparkrun show --json", "needs RECIPE_NAME"),
        ("sparkrun status extra", "takes 0 argument(s), 1 given"),
        ("sparkrun status -v", "has no option -v"),
        ("sparkrun status --json=yes", "is a flag and takes no value"),
        ("sparkrun run qwen --port", "needs a value"),
        ("sparkrun show qwen -- --enforce-eager", "takes no arguments after --"),
    ],
)
def test_checker_reports_a_wrong_command_line(line: str, problem: str) -> None:
    problems = check_example(line)
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(
    "line",
    [
        "sparkrun run RECIPE [-H …|--cluster …] [--tp N] [-o key=value]… [-e K=V]… [--dry-run [--json]]"
        " [--follow/--no-follow] [-- EXTRA_ARGS]",
        "sparkrun registry add URL [--trust] | update [NAME] | list | show | enable",
        "sparkrun stop JOB | --all",
        "sparkrun recipe validate PATH|NAME [--strict] [--json]",
        "sparkrun status --json | jq .",
        "sparkrun -vv -q status",
        "sparkrun COMMAND --help",
        "sparkrun run $ARGUMENTS --dry-run --json",
        "sparkrun run qwen -H a,b --tp=2 -- --enforce-eager",
    ],
)
def test_checker_accepts_synopsis_notation(line: str) -> None:
    assert check_example(line) == []


def test_inline_span_naming_a_command_needs_no_arguments_but_a_code_block_does() -> None:
    assert check_example("sparkrun show", span=True) == []
    assert check_example("sparkrun show") != []
    assert check_example("sparkrun shoow", span=True) != []


def test_extraction_joins_continuations_cuts_comments_and_splits_commands(tmp_path: Path) -> None:
    doc = tmp_path / "page.md"
    doc.write_text(
        "Use `sparkrun list --json` or `sparkrun.cli` (not a command).\n\n"
        "```bash\n"
        "sparkrun run r -H a,b \\\n  --tp 2   # two hosts\n"
        "sparkrun logs JOB -f      sparkrun stop JOB\n"
        "sparkrun status --json > out.json 2>err && echo done\n"
        "```\n\n```text\nerror: see sparkrun show NAME\n```\n\n"
        "```yaml\ncommand: sparkrun run x\n```\n",
        encoding="utf-8",
    )
    found = [(e.line, e.text, e.span) for e in examples_in(doc, root=doc.parent)]
    assert found == [
        (1, "sparkrun list --json", True),
        (4, "sparkrun run r -H a,b --tp 2", False),
        (6, "sparkrun logs JOB -f", False),
        (6, "sparkrun stop JOB", False),
        (7, "sparkrun status --json", False),
    ]
