"""Find the `sparkrun …` command lines in Markdown files and check them against the real Click commands.

A command line is taken from fenced code blocks (shell-like or unlabelled) and from inline code spans that start with
`sparkrun`. Synopsis notation is understood: `[optional]`, `…`, `A | B` alternatives (`stop JOB | --all`, `registry
add URL | update [NAME]`), `--flag/--no-flag`, upper-case placeholders (`RECIPE`, `N`, `K=V`) and `$VARIABLES`.
The check resolves the command path through the lazy root group, then checks every option exists on that command,
takes a value when it needs one, accepts the value (type and choices) unless it is a placeholder, and that the
required arguments are there and not too many are given. It never runs a command.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[2]
SHELL_LANGS = {"", "bash", "sh", "shell", "console", "zsh"}  # ```text holds output, not commands
SEPARATORS = {"&&", "||", ";", ")", "(", "$(", "`"}
FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)")
SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*([=:.,/|-][A-Z0-9_…]*)*$")
ELLIPSIS = {"…", "..."}
REDIRECT = re.compile(r"^(&?>+&?|<+)$")


@dataclass(frozen=True)
class Example:
    source: str  # path relative to the repository root
    line: int
    text: str  # "sparkrun …" as written (continuations joined)
    span: bool = False  # an inline code span: a bare command path there names a command, needs no arguments

    @property
    def id(self) -> str:
        return f"{self.source}:{self.line}:{self.text[:60]}"


# ---- extraction ----------------------------------------------------------------------------------------------------
def _logical_lines(lines: list[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """Join `\\` continuations and synopsis continuation lines (indented, starting with `[`)."""
    current: tuple[int, str] | None = None
    for number, line in lines:
        if current and (current[1].endswith("\\") or re.match(r"^\s{2,}\[", line)):
            current = (current[0], current[1].removesuffix("\\").rstrip() + " " + line.strip())
            continue
        if current:
            yield current
        current = (number, line.rstrip())
    if current:
        yield current


def _commands_in(line: str) -> Iterator[str]:
    """Each `sparkrun …` command in one shell line (comments cut, one line may hold several commands)."""
    try:
        lexer = shlex.shlex(line.removeprefix("$ "), posix=True, punctuation_chars=";&|()<>")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        tokens = list(lexer)
    except ValueError:
        tokens = line.split("#", 1)[0].split()
    starts = [i for i, t in enumerate(tokens) if t == "sparkrun" or t.endswith("/sparkrun")]
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(tokens)
        words = []
        for token in tokens[start:end]:
            if token in SEPARATORS or REDIRECT.match(token):
                if words and words[-1].isdigit() and REDIRECT.match(token):
                    words.pop()  # the 2 of 2>
                break
            words.append(token)
        yield shlex.join(["sparkrun", *words[1:]])


def examples_in(path: Path, root: Path = ROOT) -> list[Example]:
    rel = str(path.relative_to(root))
    found: list[Example] = []
    fence: str | None = None
    block: list[tuple[int, str]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = FENCE.match(line)
        if match and fence is None:
            fence, block = match.group(2).lower(), []
            continue
        if match and fence is not None:
            if fence in SHELL_LANGS:
                for start, logical in _logical_lines(block):
                    found += [Example(rel, start, cmd) for cmd in _commands_in(logical)]
            fence = None
            continue
        if fence is not None:
            block.append((number, line))
            continue
        for span in SPAN.findall(line):
            if span == "sparkrun" or span.startswith("sparkrun "):
                found += [Example(rel, number, cmd, span=True) for cmd in _commands_in(span)]
    return found


def documentation_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "recipes" / "README.md"]
    files += sorted((ROOT / "website" / "docs").rglob("*.md"))
    files += sorted((ROOT / "sparkrun-cc-plugin").rglob("*.md"))
    return files


def all_examples() -> list[Example]:
    return [e for path in documentation_files() for e in examples_in(path)]


# ---- checking --------------------------------------------------------------------------------------------------
def is_placeholder(token: str) -> bool:
    return (
        bool(PLACEHOLDER.match(token))
        or token.startswith(("$", "<", "{"))
        or "…" in token
        or "..." in token
        or token in {"key=value", "k=v", "key.field=value"}
    )


def _strip(raw: str) -> tuple[str, bool]:
    """Remove synopsis brackets and a trailing ellipsis; say whether there was one."""
    token, repeated = raw, False
    while True:
        stripped = token.strip("[]")
        for ellipsis in ("…", "..."):
            if stripped.endswith(ellipsis) and stripped != ellipsis:
                stripped, repeated = stripped[: -len(ellipsis)], True
        if stripped == token:
            return token, repeated
        token = stripped


def normalize(tokens: list[str]) -> list[str]:
    """Drop synopsis brackets, split `--a/--b` and glued `|`; an ellipsis stays as a `…` token."""
    out: list[str] = []
    for raw in tokens:
        token, repeated = _strip(raw)
        if not token:
            continue
        if token.startswith("--") and "/--" in token:
            out += token.split("/")
        elif "|" in token and token != "|" and not PLACEHOLDER.match(token):
            parts = token.split("|")
            for i, part in enumerate(parts):
                out += ([part] if part else []) + (["|"] if i < len(parts) - 1 else [])
        else:
            out.append(token)
        if repeated:
            out.append("…")
    return out


class Checker:
    """Walks one normalized command line through the Click command tree; collects problems."""

    def __init__(self, root: click.Group, *, bare_path_ok: bool = False) -> None:
        self.root = root
        self.bare_path_ok = bare_path_ok  # `sparkrun show` in prose names the command
        self.problems: list[str] = []

    def check(self, tokens: list[str]) -> list[str]:
        ctx = click.Context(self.root, info_name="sparkrun")
        rest = self._options(self.root, ctx, tokens[1:])
        chain = [(self.root, ctx)]
        self._walk(chain, rest, alternation=False)
        return self.problems

    def _walk(self, chain: list[tuple[click.Command, click.Context]], tokens: list[str], alternation: bool) -> None:
        command, ctx = chain[-1]
        while tokens and isinstance(command, click.Group) and not tokens[0].startswith("-") and tokens[0] != "|":
            name = tokens.pop(0)
            if is_placeholder(name):
                return  # `sparkrun COMMAND --help`: any command
            sub = command.get_command(ctx, name)
            if sub is None:
                self.problems.append(f"no command `{ctx.command_path} {name}`")
                return
            ctx = click.Context(sub, parent=ctx, info_name=name)
            command = sub
            chain.append((command, ctx))
        if not tokens and self.bare_path_ok:
            return
        positionals, rest = self._arguments(command, ctx, tokens)
        # `…` and `$ARGUMENTS` stand for "the rest": any number of arguments (and options).
        given = tokens[: len(tokens) - len(rest)]
        open_ended = any(t in ELLIPSIS or t.startswith("$") for t in given) or bool({"-h", "--help"} & set(given))
        if not alternation and not open_ended:
            self._required(command, ctx, positionals)
        if rest:
            self._alternative(chain, rest[1:])

    def _alternative(self, chain: list[tuple[click.Command, click.Context]], tokens: list[str]) -> None:
        """After `|`: more options of the same command, a sibling subcommand, a placeholder, or a pipe (stop)."""
        if not tokens:
            return
        parent_chain = chain[:-1]
        if tokens[0].startswith("-"):
            self._walk(chain, tokens, alternation=True)
        elif is_placeholder(tokens[0]):
            self._walk(chain, tokens[1:], alternation=True)
        elif parent_chain and isinstance(parent_chain[-1][0], click.Group):
            group, group_ctx = parent_chain[-1]
            if tokens[0] in group.list_commands(group_ctx):
                self._walk(parent_chain, tokens, alternation=True)

    def _arguments(self, command: click.Command, ctx: click.Context, tokens: list[str]) -> tuple[int, list[str]]:
        """Check options; return (positional count, tokens from the first `|` on)."""
        positionals = 0
        i = 0
        while i < len(tokens):
            token = tokens[i]
            if token == "|":
                return positionals, tokens[i:]
            if token == "--":
                if not any(isinstance(p, click.Argument) and p.nargs == -1 for p in command.params):
                    self.problems.append(f"`{ctx.command_path}` takes no arguments after --")
                return positionals, []
            if token.startswith("-") and token != "-":
                i += self._option(command, ctx, tokens, i)
                continue
            if token not in ELLIPSIS and not token.startswith("$"):
                positionals += 1
            i += 1
        return positionals, []

    def _options(self, command: click.Command, ctx: click.Context, tokens: list[str]) -> list[str]:
        i = 0
        while i < len(tokens) and tokens[i].startswith("-") and tokens[i] not in ("--", "|"):
            i += self._option(command, ctx, tokens, i)
        return tokens[i:]

    def _find(self, command: click.Command, name: str) -> click.Option | None:
        for param in command.params:
            if isinstance(param, click.Option) and (name in param.opts or name in param.secondary_opts):
                return param
        return None

    def _option(self, command: click.Command, ctx: click.Context, tokens: list[str], i: int) -> int:
        """Check the option at tokens[i]; return how many tokens it used."""
        name, _, glued = tokens[i].partition("=")
        if name in ("-h", "--help"):
            return 1
        option = self._find(command, name)
        if option is None:
            if not self._flag_bundle(command, name):  # -vv
                self.problems.append(f"`{ctx.command_path}` has no option {name}")
            return 1
        if option.is_flag or option.count:
            if glued:
                self.problems.append(f"`{ctx.command_path} {name}` is a flag and takes no value")
            return 1
        value = glued or (tokens[i + 1] if i + 1 < len(tokens) and tokens[i + 1] not in ("|", "--") else None)
        if value is None:
            self.problems.append(f"`{ctx.command_path} {name}` needs a value")
            return 1
        self._value(option, ctx, name, value)
        return 1 if glued else 2

    def _flag_bundle(self, command: click.Command, name: str) -> bool:
        if name.startswith("--") or len(name) < 3:
            return False
        options = [self._find(command, f"-{c}") for c in name[1:]]
        return all(o is not None and (o.is_flag or o.count) for o in options)

    def _value(self, option: click.Option, ctx: click.Context, name: str, value: str) -> None:
        if is_placeholder(value):
            return
        try:
            option.type.convert(value, option, ctx)
        except click.BadParameter as exc:
            self.problems.append(f"`{ctx.command_path} {name} {value}`: {exc.message}")

    def _required(self, command: click.Command, ctx: click.Context, positionals: int) -> None:
        arguments = [p for p in command.params if isinstance(p, click.Argument)]
        needed = sum(max(p.nargs, 1) for p in arguments if p.required)
        capacity = None if any(p.nargs == -1 for p in arguments) else sum(p.nargs for p in arguments)
        if positionals < needed:
            names = " ".join(p.human_readable_name for p in arguments if p.required)
            self.problems.append(f"`{ctx.command_path}` needs {names}")
        if capacity is not None and positionals > capacity and not isinstance(command, click.Group):
            self.problems.append(f"`{ctx.command_path}` takes {capacity} argument(s), {positionals} given")


def check_example(text: str, *, span: bool = False) -> list[str]:
    """Problems of one `sparkrun …` line (empty: it is a valid use of the CLI)."""
    from sparkrun.cli import cli

    return Checker(cli, bare_path_ok=span).check(normalize(shlex.split(text)))
