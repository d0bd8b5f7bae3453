"""MkDocs hooks for the sparkrun site: pages generated from the code, and a check that the CLI reference is complete.

- `<!-- generated: exit-codes -->` and `<!-- generated: troubleshooting -->` in a page are replaced by tables and
  sections built from `sparkrun.errors` (ExitCode and every SparkrunError subclass in the package) plus the prose in
  `website/data/errors.yaml`. A code or class without prose is a build warning (so `--strict` fails).
- After the build, every command and subcommand reachable from the root Click group (the lazy `COMMANDS` table
  included) must have its anchor on the CLI reference page.

Only stdlib, PyYAML and sparkrun are imported here, so tests/docs can import this module without MkDocs installed.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

WEBSITE = Path(__file__).resolve().parent
DATA_FILE = WEBSITE / "data" / "errors.yaml"
CLI_PAGE = Path("reference") / "cli" / "index.html"
MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)

# A warning on a logger under "mkdocs" counts as a build warning: `mkdocs build --strict` fails on it.
log = logging.getLogger("mkdocs.plugins.sparkrun")


# ---- the error hierarchy ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ErrorClass:
    name: str
    parent: str | None
    exit_code: int
    exit_name: str
    module: str
    doc: str


def error_classes() -> list[ErrorClass]:
    """Every SparkrunError subclass defined anywhere in the sparkrun package, parents before children."""
    import sparkrun
    from sparkrun.errors import SparkrunError

    for info in pkgutil.walk_packages(sparkrun.__path__, "sparkrun."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    found: list[ErrorClass] = []

    def visit(cls: type[SparkrunError], parent: str | None) -> None:
        doc = " ".join((cls.__doc__ or "").split()) if "__doc__" in vars(cls) else ""
        code = cls.exit_code
        found.append(ErrorClass(cls.__name__, parent, int(code), code.name, cls.__module__, doc))
        for sub in cls.__subclasses__():
            visit(sub, cls.__name__)

    visit(SparkrunError, None)
    return found


def load_prose(path: Path = DATA_FILE) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def missing_prose(prose: dict[str, Any]) -> list[str]:
    """Problems that make the generated pages incomplete or stale (empty when the prose matches the code)."""
    from sparkrun.errors import ExitCode

    problems = []
    codes, classes = set(prose.get("exit_codes", {})), set(prose.get("errors", {}))
    names = {c.name for c in error_classes()}
    problems += [f"exit code {m.name} ({int(m)}) has no entry in exit_codes" for m in ExitCode if m.name not in codes]
    problems += [f"exit_codes.{n} is not a member of ExitCode" for n in sorted(codes - set(ExitCode.__members__))]
    problems += [f"error class {n} has no entry in errors" for n in sorted(names - classes)]
    problems += [f"errors.{n} is not a SparkrunError subclass in the package" for n in sorted(classes - names)]
    for name, entry in prose.get("errors", {}).items():
        for key in ("means", "examples", "fix"):
            if not entry or not entry.get(key):
                problems.append(f"errors.{name}.{key} is empty")
    return problems


# ---- rendering -----------------------------------------------------------------------------------------------
def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def render_exit_codes(prose: dict[str, Any], prefix: str = "") -> str:
    """The exit code table. `prefix` turns the troubleshooting link into one relative to the page."""
    from sparkrun.errors import ExitCode

    classes = error_classes()
    lines = ["| code | name | meaning | raised as |", "|---:|---|---|---|"]
    for member in ExitCode:
        link = "[`{0}`](" + prefix + "troubleshooting.md#{1})"
        raised = [link.format(c.name, c.name.lower()) for c in classes if c.exit_code == member]
        if member == ExitCode.USAGE:
            raised.append("Click (bad option or argument)")
        meaning = prose.get("exit_codes", {}).get(member.name, "")
        lines.append(f"| {int(member)} | `{member.name}` | {_cell(meaning)} | {', '.join(raised) or '-'} |")
    return "\n".join(lines) + "\n"


def render_troubleshooting(prose: dict[str, Any]) -> str:
    """One section per error class: what it means, how its messages look, what to do."""
    out = ["| error class | exit code | parent |", "|---|---:|---|"]
    classes = error_classes()
    for c in classes:
        parent = f"[`{c.parent}`](#{c.parent.lower()})" if c.parent else "-"
        out.append(f"| [`{c.name}`](#{c.name.lower()}) | {c.exit_code} (`{c.exit_name}`) | {parent} |")
    out.append("")
    for c in classes:
        entry = prose.get("errors", {}).get(c.name) or {}
        out += [f"## {c.name} {{ #{c.name.lower()} }}", ""]
        kind = f"; a kind of `{c.parent}`." if c.parent else "."
        out.append(f"Exit code **{c.exit_code}** (`{c.exit_name}`){kind}")
        out += ["", str(entry.get("means", "")).strip(), "", "Looks like:", "", "```text"]
        out += [str(e) for e in entry.get("examples", [])]
        out += ["```", "", "**Fix.** " + str(entry.get("fix", "")).strip(), ""]
    return "\n".join(out)


def render_marker(name: str, prose: dict[str, Any], page_path: str) -> str:
    prefix = "../" * page_path.count("/")
    if name == "exit-codes":
        return render_exit_codes(prose, prefix)
    if name == "troubleshooting":
        return render_troubleshooting(prose)
    raise ValueError(f"unknown generated block {name!r}")


# ---- the CLI reference -----------------------------------------------------------------------------------------
def command_paths() -> list[tuple[str, ...]]:
    """Every visible command path under `sparkrun` (lazy commands loaded), e.g. ("cluster", "create")."""
    import click

    from sparkrun.cli import cli

    paths: list[tuple[str, ...]] = []

    def walk(group: click.Group, prefix: tuple[str, ...], ctx: click.Context) -> None:
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            paths.append((*prefix, name))
            if isinstance(command, click.Group):
                walk(command, (*prefix, name), click.Context(command, parent=ctx, info_name=name))

    walk(cli, (), click.Context(cli, info_name="sparkrun"))
    return paths


def cli_anchor(path: tuple[str, ...]) -> str:
    return "-".join(("sparkrun", *path))


def missing_cli_anchors(html: str) -> list[str]:
    ids = set(re.findall(r'id="([^"]+)"', html))
    return [" ".join(("sparkrun", *p)) for p in command_paths() if cli_anchor(p) not in ids]


CLICK_START, CLICK_END = "<!-- mkdocs-click: start -->", "<!-- mkdocs-click: end -->"


def mark_click_blocks(lines: list[str]) -> list[str]:
    """Put sentinels around each `::: mkdocs-click` block (before mkdocs-click expands it)."""
    out: list[str] = []
    inside = False
    for line in lines:
        if inside and not line.startswith("    "):
            out.append(CLICK_END)
            inside = False
        if line.strip() == "::: mkdocs-click":
            out.append(CLICK_START)
            inside = True
        out.append(line)
    return [*out, CLICK_END] if inside else out


def keep_preformatted_help(lines: list[str]) -> list[str]:
    """Inside expanded mkdocs-click blocks, show help paragraphs written pre-formatted (Click's `\\b` blocks: lines
    after the first indented) as code, the way `--help` prints them, instead of one run-together paragraph."""
    out: list[str] = []
    inside, paragraph = False, []
    for line in [*lines, ""]:
        if line in (CLICK_START, CLICK_END):
            inside = line == CLICK_START
            continue
        if inside and line.strip():
            paragraph.append(line)
            continue
        if len(paragraph) > 1 and all(p.startswith("  ") for p in paragraph[1:]):
            paragraph = ["", *("    " + p for p in paragraph)]
        out += [*paragraph, line]
        paragraph = []
    return out[:-1]


def _click_help_extension() -> Any:
    from markdown.extensions import Extension
    from markdown.preprocessors import Preprocessor

    class Mark(Preprocessor):
        def run(self, lines: list[str]) -> list[str]:
            return mark_click_blocks(lines)

    class Keep(Preprocessor):
        def run(self, lines: list[str]) -> list[str]:
            return keep_preformatted_help(lines)

    class ClickHelpExtension(Extension):
        def extendMarkdown(self, md: Any) -> None:
            # mkdocs-click expands its blocks at priority 141: mark them before, rework its output after.
            md.preprocessors.register(Mark(md), "sparkrun_click_mark", 142)
            md.preprocessors.register(Keep(md), "sparkrun_click_help", 140)

    return ClickHelpExtension()


# ---- MkDocs hook entry points ------------------------------------------------------------------------------------
def on_config(config: Any) -> Any:
    config["markdown_extensions"].append(_click_help_extension())
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if not MARKER.search(markdown):
        return markdown
    prose = load_prose()
    for problem in missing_prose(prose):
        log.warning("%s: %s (edit %s)", page.file.src_uri, problem, DATA_FILE.relative_to(WEBSITE.parent))
    return MARKER.sub(lambda m: render_marker(m.group(1), prose, page.file.src_uri), markdown)


def on_post_build(config: Any) -> None:
    page = Path(config["site_dir"]) / CLI_PAGE
    if not page.exists():
        log.warning("CLI reference page %s was not built", CLI_PAGE)
        return
    for command in missing_cli_anchors(page.read_text(encoding="utf-8")):
        log.warning("CLI reference: `%s` is not documented (its anchor is missing)", command)
