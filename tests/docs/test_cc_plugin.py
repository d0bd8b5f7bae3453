"""The Claude Code plugin (sparkrun-cc-plugin/) and the marketplace manifest (.claude-plugin/marketplace.json) have the
structure Claude Code reads, and every tool permission names a sparkrun command that exists."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from docs.doc_examples import ROOT
from sparkrun.cli import cli

PLUGIN = ROOT / "sparkrun-cc-plugin"
COMMANDS = ("run", "stop", "status", "logs", "list", "show", "setup", "sync")
SKILLS = ("run", "setup", "registry")
COMMAND_KEYS = {"description", "allowed-tools", "argument-hint", "model", "disable-model-invocation"}
SKILL_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
TOOL = re.compile(r"^Bash\(sparkrun(?P<path>( [a-z][a-z-]*)+)(?P<rest>(:\*)?)\)$")


def frontmatter(path: Path) -> tuple[dict[str, Any], str]:
    text = path.read_text(encoding="utf-8")
    match = re.match(r"^---\n(.*?)\n---\n(.*)$", text, re.S)
    assert match, f"{path.relative_to(ROOT)}: no YAML frontmatter between --- lines"
    data = yaml.safe_load(match.group(1))
    assert isinstance(data, dict), f"{path.relative_to(ROOT)}: frontmatter is not a mapping"
    return data, match.group(2)


def command_exists(words: list[str]) -> bool:
    command: click.Command = cli
    ctx = click.Context(cli, info_name="sparkrun")
    for word in words:
        if not isinstance(command, click.Group):
            return False
        sub = command.get_command(ctx, word)
        if sub is None:
            return False
        command, ctx = sub, click.Context(sub, parent=ctx, info_name=word)
    return True


def allowed_tools(data: dict[str, Any]) -> list[str]:
    tools = data["allowed-tools"]
    return [t.strip() for t in tools.split(",")] if isinstance(tools, str) else list(tools)


# ---- manifests -----------------------------------------------------------------------------------------------------
def test_plugin_manifest_names_the_plugin_and_carries_the_project_version() -> None:
    manifest = json.loads((PLUGIN / ".claude-plugin" / "plugin.json").read_text(encoding="utf-8"))
    version = yaml.safe_load((ROOT / "versions.yaml").read_text(encoding="utf-8"))["sparkrun"]
    assert manifest["name"] == "sparkrun" and re.fullmatch(r"[a-z0-9-]+", manifest["name"])
    assert manifest["version"] == str(version)
    assert manifest["description"] and manifest["author"]["name"]


def test_marketplace_points_at_the_plugin_directory() -> None:
    market = json.loads((ROOT / ".claude-plugin" / "marketplace.json").read_text(encoding="utf-8"))
    assert re.fullmatch(r"[a-z0-9-]+", market["name"]) and market["owner"]["name"]
    (entry,) = market["plugins"]
    assert entry["source"].startswith("./") and ".." not in entry["source"]
    target = (ROOT / entry["source"]).resolve()
    assert target == PLUGIN.resolve()
    plugin = json.loads((target / ".claude-plugin" / "plugin.json").read_text(encoding="utf-8"))
    assert entry["name"] == plugin["name"]
    # The version lives in plugin.json only (an entry's version would shadow it and stop updates).
    assert "version" not in entry


def test_components_live_at_the_plugin_root_not_inside_the_manifest_directory() -> None:
    assert sorted(p.name for p in (PLUGIN / ".claude-plugin").iterdir()) == ["plugin.json"]
    assert sorted(p.stem for p in (PLUGIN / "commands").glob("*.md")) == sorted(COMMANDS)
    assert sorted(p.name for p in (PLUGIN / "skills").iterdir()) == sorted(SKILLS)


# ---- slash commands ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", COMMANDS)
def test_slash_command_has_the_frontmatter_claude_code_reads(name: str) -> None:
    data, body = frontmatter(PLUGIN / "commands" / f"{name}.md")
    assert set(data) <= COMMAND_KEYS, set(data) - COMMAND_KEYS
    assert {"description", "allowed-tools", "argument-hint"} <= set(data)
    assert 10 <= len(data["description"]) <= 80
    assert isinstance(data["argument-hint"], str) and data["argument-hint"]
    assert "$ARGUMENTS" in body


@pytest.mark.parametrize("name", COMMANDS)
def test_slash_command_may_run_only_sparkrun_commands_that_exist(name: str) -> None:
    data, body = frontmatter(PLUGIN / "commands" / f"{name}.md")
    tools = allowed_tools(data)
    assert tools
    for tool in tools:
        match = TOOL.match(tool)
        assert match, f"{name}: {tool!r} is not Bash(sparkrun COMMAND:*)"
        assert command_exists(match.group("path").split()), f"{name}: {tool} names no sparkrun command"
    # Every sparkrun command the body tells Claude to run ("Run `sparkrun …`") is covered by a permission.
    granted = [TOOL.match(t).group("path").strip() for t in tools]  # type: ignore[union-attr]
    told = re.findall(r"\b[Rr]un `sparkrun ((?:[a-z][a-z-]* ?)+)", body)
    assert told, f"{name}: the command tells Claude to run nothing"
    for used in told:
        words = used.split()
        assert any(" ".join(words[: len(g.split())]) == g for g in granted), f"{name}: `sparkrun {used}` not allowed"


@pytest.mark.parametrize("name", COMMANDS)
def test_slash_command_parses_json_and_keeps_secrets_out(name: str) -> None:
    _, body = frontmatter(PLUGIN / "commands" / f"{name}.md")
    if name != "logs":  # logs has no JSON form; it summarizes text
        assert "--json" in body
    assert not re.search(r"-e\s+\w*(TOKEN|SECRET|PASSWORD|API_KEY)\w*=", body)


def test_launching_and_stopping_commands_plan_first_and_confirm() -> None:
    _, run = frontmatter(PLUGIN / "commands" / "run.md")
    _, stop = frontmatter(PLUGIN / "commands" / "stop.md")
    assert "--dry-run --json" in run and re.search(r"confirm", run, re.I) and "--no-follow --json" in run
    assert "curl" in run and re.search(r"never print", run, re.I)
    assert "--dry-run" in stop and re.search(r"confirm", stop, re.I)


# ---- skills --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SKILLS)
def test_skill_has_name_and_description_frontmatter(name: str) -> None:
    data, body = frontmatter(PLUGIN / "skills" / name / "SKILL.md")
    assert data["name"] == name and SKILL_NAME.fullmatch(name) and len(name) <= 64
    assert isinstance(data["description"], str) and 50 <= len(data["description"]) <= 1024
    assert set(data) <= {"name", "description", "allowed-tools", "license", "metadata"}
    assert body.strip().startswith("# ")


def test_run_skill_teaches_the_safety_rules() -> None:
    _, body = frontmatter(PLUGIN / "skills" / "run" / "SKILL.md")
    for rule in ("--dry-run --json", "status --json", "curl", "--trust", "HF_TOKEN"):
        assert rule in body, rule
    assert re.search(r"confirm", body, re.I) and re.search(r"never print tokens", body, re.I)


def test_setup_checks_as_json_shows_each_fix_plan_and_fixes_only_after_confirmation() -> None:
    _, command = frontmatter(PLUGIN / "commands" / "setup.md")
    assert "sparkrun setup check --cluster NAME --json" in command and "--fix --json" in command
    assert "--dry-run --json" in command and re.search(r"confirm", command, re.I)
    # a host key is accepted only with the fingerprint the user confirmed; sudo passwords never pass through Claude
    assert "--accept-host-key" in command and "no terminal to ask on" in command
    _, skill = frontmatter(PLUGIN / "skills" / "setup" / "SKILL.md")
    for rule in ("sparkrun setup check", "--fix", "--dry-run --json", "host_keys", "no terminal", "never pass `--yes`"):
        assert rule in skill, rule


def test_sync_plans_first_confirms_and_prunes_only_what_a_dry_run_showed() -> None:
    _, body = frontmatter(PLUGIN / "commands" / "sync.md")
    assert "sparkrun sync $ARGUMENTS --dry-run --json" in body and re.search(r"confirm|clear yes", body, re.I)
    prune = body.split("model-cache prune", 1)[1]
    assert "--dry-run" in prune and re.search(r"agrees", prune)
    assert not re.search(r"-e\s+\w*TOKEN\w*=", body)
