"""The generated pages (exit codes, troubleshooting) and the CLI reference cannot drift from the code: the prose in
website/data/errors.yaml must cover exactly the error classes and exit codes of sparkrun.errors, and the CLI
reference must have an anchor for every command the lazy root group can load."""

from __future__ import annotations

import gc
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from docs.doc_examples import ROOT
from sparkrun.cli import COMMANDS
from sparkrun.errors import ExitCode, HostError, SparkrunError


def load_hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sparkrun_site_hooks", ROOT / "website" / "hooks.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


hooks = load_hooks()


def test_prose_covers_every_error_class_and_exit_code() -> None:
    assert hooks.missing_prose(hooks.load_prose()) == []


def test_a_new_error_class_without_prose_is_reported() -> None:
    class QuotaError(HostError):  # defined here only; gone again after the test
        pass

    try:
        assert "error class QuotaError has no entry in errors" in hooks.missing_prose(hooks.load_prose())
    finally:
        del QuotaError
        gc.collect()
    assert "QuotaError" not in {c.name for c in hooks.error_classes()}


def test_prose_for_a_removed_class_or_code_is_reported() -> None:
    prose = hooks.load_prose()
    prose["errors"]["GoneError"] = {"means": "x", "examples": ["y"], "fix": "z"}
    prose["exit_codes"]["GONE"] = "x"
    problems = hooks.missing_prose(prose)
    assert "errors.GoneError is not a SparkrunError subclass in the package" in problems
    assert "exit_codes.GONE is not a member of ExitCode" in problems


def test_error_classes_are_the_whole_hierarchy_parents_first() -> None:
    classes = hooks.error_classes()
    names = [c.name for c in classes]
    assert names[0] == "SparkrunError"
    for c in classes[1:]:
        assert names.index(c.parent) < names.index(c.name)
    subclasses: set[str] = set()
    todo: list[type[SparkrunError]] = [SparkrunError]
    while todo:
        cls = todo.pop()
        subclasses.add(cls.__name__)
        todo += cls.__subclasses__()
    assert set(names) == subclasses


def test_troubleshooting_has_a_section_per_error_class_with_its_exit_code() -> None:
    page = hooks.render_troubleshooting(hooks.load_prose())
    for c in hooks.error_classes():
        section = re.search(rf"^## {c.name} \{{ #{c.name.lower()} \}}\n\nExit code \*\*(\d+)\*\*", page, re.M)
        assert section, c.name
        assert int(section.group(1)) == c.exit_code


def test_exit_code_table_has_a_row_per_exit_code_linking_its_classes() -> None:
    table = hooks.render_exit_codes(hooks.load_prose(), prefix="../")
    rows = [line for line in table.splitlines() if re.match(r"^\| \d+ \|", line)]
    assert [int(r.split("|")[1]) for r in rows] == [int(m) for m in ExitCode]
    host_row = next(r for r in rows if r.startswith(f"| {int(ExitCode.HOST)} |"))
    assert "[`HostError`](../troubleshooting.md#hosterror)" in host_row


def test_readme_exit_code_table_lists_every_exit_code() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    listed = [int(m) for m in re.findall(r"^\| (\d+) \|", section, re.M)]
    assert listed == [int(m) for m in ExitCode]


def test_markers_are_replaced_and_unknown_markers_refused() -> None:
    assert "| 130 |" in hooks.render_marker("exit-codes", hooks.load_prose(), "reference/exit-codes.md")
    with pytest.raises(ValueError, match="unknown generated block"):
        hooks.render_marker("nope", {}, "x.md")


def test_generated_page_sources_carry_their_markers() -> None:
    docs = ROOT / "website" / "docs"
    assert "<!-- generated: exit-codes -->" in (docs / "reference" / "exit-codes.md").read_text(encoding="utf-8")
    assert "<!-- generated: troubleshooting -->" in (docs / "troubleshooting.md").read_text(encoding="utf-8")


# ---- the CLI reference ---------------------------------------------------------------------------------------------
def test_command_paths_load_every_lazy_command_and_their_subcommands() -> None:
    paths = hooks.command_paths()
    assert {p[0] for p in paths} == set(COMMANDS)
    assert {("cluster", "create"), ("recipe", "validate"), ("registry", "trust"), ("setup", "plugins", "list")} <= set(
        paths
    )
    assert ("registry", "revert-to-defaults") not in paths  # hidden


def test_missing_cli_anchor_is_reported() -> None:
    anchors = [hooks.cli_anchor(p) for p in hooks.command_paths()]
    html = "".join(f'<h3 id="{a}">x</h3>' for a in anchors)
    assert hooks.missing_cli_anchors(html) == []
    without = html.replace('id="sparkrun-cluster-create"', 'id="elsewhere"')
    assert hooks.missing_cli_anchors(without) == ["sparkrun cluster create"]


def test_cli_reference_page_renders_the_whole_root_group_with_mkdocs_click() -> None:
    page = (ROOT / "website" / "docs" / "reference" / "cli.md").read_text(encoding="utf-8")
    block = page.split("::: mkdocs-click", 1)[1]
    assert ":module: sparkrun.cli" in block and ":command: cli" in block and ":prog_name: sparkrun" in block


def test_preformatted_help_inside_mkdocs_click_blocks_becomes_code() -> None:
    marked = hooks.mark_click_blocks(["intro", "::: mkdocs-click", "    :module: m", "after"])
    assert marked == ["intro", hooks.CLICK_START, "::: mkdocs-click", "    :module: m", hooks.CLICK_END, "after"]
    expanded = [
        "outside:",
        "  indented stays",
        "",
        hooks.CLICK_START,
        "Quick start:",
        "  sparkrun list    recipes",
        "",
        "Plain paragraph",
        "on two lines.",
        hooks.CLICK_END,
    ]
    assert hooks.keep_preformatted_help(expanded) == [
        "outside:",
        "  indented stays",
        "",
        "",
        "    Quick start:",
        "      sparkrun list    recipes",
        "",
        "Plain paragraph",
        "on two lines.",
    ]


def test_site_config_enables_the_hooks_and_strict_checks() -> None:
    import yaml

    config = yaml.safe_load((ROOT / "website" / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["strict"] is True and config["hooks"] == ["hooks.py"]
    assert all(config["validation"][k] == "warn" for k in ("omitted_files", "unrecognized_links", "anchors"))
    extensions = [e if isinstance(e, str) else next(iter(e)) for e in config["markdown_extensions"]]
    assert extensions.index("attr_list") < extensions.index("mkdocs-click")


def test_every_docs_page_is_in_the_navigation() -> None:
    import yaml

    config = yaml.safe_load((ROOT / "website" / "mkdocs.yml").read_text(encoding="utf-8"))

    def pages(nav: object) -> list[str]:
        if isinstance(nav, str):
            return [nav]
        if isinstance(nav, list):
            return [p for item in nav for p in pages(item)]
        if isinstance(nav, dict):
            return [p for value in nav.values() for p in pages(value)]
        return []

    docs = ROOT / "website" / "docs"
    assert sorted(pages(config["nav"])) == sorted(str(p.relative_to(docs)) for p in docs.rglob("*.md"))


def test_code_lines_fit_the_page_width() -> None:
    # Longer lines scroll sideways on a 1280 px screen and hide their ends (comments, flags).
    long_lines = []
    for path in (ROOT / "website" / "docs").rglob("*.md"):
        inside = False
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith(("```", "~~~")):
                inside = not inside
            elif inside and len(line) > 88:
                long_lines.append(f"{path.relative_to(ROOT)}:{number} ({len(line)} chars)")
    assert long_lines == []


def test_hooks_module_needs_no_mkdocs() -> None:
    source = Path(hooks.__file__).read_text(encoding="utf-8")
    assert not re.search(r"^(import|from) mkdocs", source, re.M)


def test_the_strict_docs_build_is_not_silenced() -> None:
    # `mkdocs build --quiet` raises the log level above WARNING, so MkDocs never counts a warning and `--strict`
    # passes with broken links and anchors. The `docs` target must build strictly and without --quiet.
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^docs: .*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe, "no `docs:` target in the Makefile"
    assert "mkdocs build --strict" in recipe.group(1)
    assert "--quiet" not in recipe.group(1) and " -q " not in recipe.group(1)
