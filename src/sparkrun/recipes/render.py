"""Templating of `command:` and hook strings, and turning a rendered command into argv.

Placeholder grammar (one pass, left to right, so a substituted value is never scanned again as template text):
- `{name}` / `{name.field}` where name is an identifier: replaced by the setting's value. Strings are themselves
  rendered (`base_url: "http://localhost:{port}"`), mappings/lists become compact JSON, booleans `true`/`false`.
- `${...}` and `$NAME` are the shell's and are left alone (`"${PATH:-}"`, `"${NODE_IP}"`).
- Any other brace is literal text: `'{"level": 3}'`, `'{"method":"mtp","num_speculative_tokens":3}'`.
- With `escapes=True` (v1 recipes, or a v2 command that uses `{{`), `{{` and `}}` are literal `{` and `}`.
A placeholder that names nothing is reported, never left silently in the output.

A rendered command becomes argv with `shlex` (the core runs it as the container's main process, no shell). When the
command needs a shell (`export A=1; exec vllm serve …`, `$VAR`, pipes, `FOO=1 cmd`), argv is
`bash -c '<command> "$@"' sparkrun-serve`, so arguments a runtime appends still reach the last command.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sparkrun.errors import RecipeError
from sparkrun.runtimes.base import SHELL_WRAPPER_ARGV0

IDENT = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_TOKEN = re.compile(r"\{\{|\}\}|\$\{|\{(" + IDENT + r")\}")
_PLACEHOLDER = re.compile(r"\{(" + IDENT + r")\}")
MAX_DEPTH = 10
SHELL_ARGV0 = SHELL_WRAPPER_ARGV0  # the runtimes recognise the wrapper by it
_SHELL_WORDS = frozenset(
    {
        "export",
        "exec",
        "cd",
        "source",
        ".",
        "set",
        "unset",
        "eval",
        "ulimit",
        "umask",
        "if",
        "for",
        "while",
        "case",
        "function",
        "trap",
    }
)
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_CONTINUATION = re.compile(r"\\[ \t]*\r?\n")
_SLOPPY_CONTINUATION = re.compile(r"\\[ \t]+\r?\n")


@dataclass(frozen=True)
class Rendered:
    text: str
    missing: tuple[str, ...] = ()  # placeholders that named nothing, in order of appearance


def _skip_shell_parameter(text: str, start: int) -> int:
    """Index just past the `}` that closes the `${` at `start` (nested `${a:-${b}}` included)."""
    depth, i = 0, start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(text)


def lookup(values: Mapping[str, Any], name: str) -> Any:
    node: Any = values
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


class _Renderer:
    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = values
        self.missing: list[str] = []

    def value(self, name: str, stack: tuple[str, ...]) -> str | None:
        if name in stack:
            raise RecipeError(f"placeholder cycle: {' -> '.join(f'{{{n}}}' for n in (*stack, name))}")
        if len(stack) >= MAX_DEPTH:
            raise RecipeError(f"placeholders nested deeper than {MAX_DEPTH}: {' -> '.join(stack)}")
        found = lookup(self.values, name)
        if found is None:
            return None
        if isinstance(found, str):
            return self.render(found, escapes=False, stack=(*stack, name))
        return format_value(found)

    def render(self, text: str, *, escapes: bool, stack: tuple[str, ...] = ()) -> str:
        out: list[str] = []
        pos = 0
        for match in _TOKEN.finditer(text):
            if match.start() < pos:  # inside a `${...}` we already copied
                continue
            token = match.group(0)
            out.append(text[pos : match.start()])
            pos = match.end()
            if token == "${":
                pos = _skip_shell_parameter(text, match.start())
                out.append(text[match.start() : pos])
            elif token in ("{{", "}}"):
                out.append(token[0] if escapes else token)
            else:
                name = match.group(1)
                rendered = self.value(name, stack)
                if rendered is None:
                    if name not in self.missing:
                        self.missing.append(name)
                    rendered = token
                out.append(rendered)
        out.append(text[pos:])
        return "".join(out)


def render_template(text: str, values: Mapping[str, Any], *, escapes: bool = False) -> Rendered:
    """Substitute placeholders; never raises for unknown names (they are listed in `missing`)."""
    renderer = _Renderer(values)
    result = renderer.render(text, escapes=escapes)
    return Rendered(result, tuple(renderer.missing))


def placeholders(text: str, *, escapes: bool = False) -> list[str]:
    """The placeholder names a template uses, in order (shell `${...}` excluded)."""
    names: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        if match.start() < pos:
            continue
        pos = match.end()
        if match.group(0) == "${":
            pos = _skip_shell_parameter(text, match.start())
        elif match.group(1) and match.group(1) not in names:
            names.append(match.group(1))
    return names


# ---- command → argv ----------------------------------------------------------------------------------------------
def _first_word(text: str) -> str:
    stripped = text.lstrip()
    return stripped.split(None, 1)[0] if stripped else ""


def _expands(text: str, i: int) -> bool:
    """`$NAME`, `${...}`, `$(...)` or a special parameter at `i`."""
    return text[i] == "$" and i + 1 < len(text) and (text[i + 1].isalnum() or text[i + 1] in "_{(@*#?!-")


def _unquoted_shell_syntax(text: str, i: int, word_start: bool) -> bool:
    ch = text[i]
    if ch in ";&|<>()`" or _expands(text, i):
        return True
    # a comment, or `~` expanded to a home directory
    return word_start and (ch == "#" or (ch == "~" and (i + 1 == len(text) or text[i + 1] in "/ \t\n")))


def _scan_needs_shell(text: str) -> bool:
    """Scan with shell quoting rules: single quotes are literal, double quotes still expand `$` and backticks."""
    quote: str | None = None
    i, word_start = 0, True
    while i < len(text):
        ch = text[i]
        if quote == "'":
            quote = None if ch == "'" else quote
        elif ch == "\\":
            i += 2
            word_start = False
            continue
        elif quote == '"':
            if ch == "`" or _expands(text, i):
                return True
            quote = None if ch == '"' else quote
        elif ch in "'\"":
            quote = ch
        elif _unquoted_shell_syntax(text, i, word_start):
            return True
        word_start = ch in " \t\r\n" and quote is None
        i += 1
    return False


def needs_shell(text: str) -> bool:
    """True when the command uses shell syntax that plain argv cannot express."""
    first = _first_word(text)
    if first in _SHELL_WORDS or _ASSIGNMENT.match(first):
        return True
    return _scan_needs_shell(text)


def _statements(text: str) -> list[tuple[int, int]]:
    """Spans of the top-level statements of a script (split at unquoted `;` and newlines, not continuations)."""
    spans: list[tuple[int, int]] = []
    quote: str | None = None
    start, i = 0, 0
    while i < len(text):
        ch = text[i]
        if quote == "'":
            quote = None if ch == "'" else quote
        elif ch == "\\":
            i += 2
            continue
        elif quote == '"':
            quote = None if ch == '"' else quote
        elif ch in "'\"":
            quote = ch
        elif ch in ";\n":
            spans.append((start, i))
            start = i + 1
        i += 1
    spans.append((start, len(text)))
    return [(a, b) for a, b in spans if text[a:b].strip()]


def _split_prelude(script: str) -> tuple[str, str] | None:
    """(prelude, last command) when the script's last statement is one plain command (`exec` optional)."""
    spans = _statements(script)
    if len(spans) < 2:
        return None
    start, end = spans[-1]
    last = script[start:end].strip()
    last = last.removeprefix("exec ").lstrip() if last.startswith("exec ") else last
    if not last or needs_shell(last):
        return None
    prelude = script[: spans[-2][1]].rstrip().rstrip(";").rstrip()
    return prelude, last


def command_argv(text: str) -> tuple[str, ...]:
    """A rendered command as the container's argv. Raises `ValueError` for unbalanced quotes.

    A plain command is split with shlex. A script whose last statement is a plain command (`export A=1; exec vllm
    serve …`) becomes `bash -c '<prelude>; exec "$@"' sparkrun-serve vllm serve …`, so the engine's argv stays
    visible and appendable; any other script becomes `bash -c '<script> "$@"' sparkrun-serve`.
    """
    if not needs_shell(text):
        return tuple(shlex.split(_CONTINUATION.sub(" ", text), comments=False, posix=True))
    script = _SLOPPY_CONTINUATION.sub("\\\n", text).strip().rstrip(";").rstrip()
    split = _split_prelude(script)
    if split is not None:
        prelude, last = split
        engine = shlex.split(_CONTINUATION.sub(" ", last), comments=False, posix=True)
        return ("bash", "-c", f'{prelude}\nexec "$@"', SHELL_ARGV0, *engine)
    shlex.split(_CONTINUATION.sub(" ", script))  # unbalanced quotes are an error in either form
    return ("bash", "-c", f'{script} "$@"', SHELL_ARGV0)


def split_shell_wrapper(argv: tuple[str, ...]) -> tuple[str, tuple[str, ...]] | None:
    """For an argv made by `command_argv` for a shell command: (script, arguments after it), else None.
    The arguments (the engine's argv for a prelude script, plus anything appended) are what `"$@"` expands to."""
    if len(argv) >= 4 and argv[:2] == ("bash", "-c") and argv[3] == SHELL_ARGV0:
        return argv[2], tuple(argv[4:])
    return None


def shell_script(argv: tuple[str, ...]) -> str | None:
    """A readable script for an argv made by `command_argv` for a shell command (for display), else None."""
    parts = split_shell_wrapper(argv)
    if parts is None:
        return None
    script, args = parts
    rest = shlex.join(args)
    if script.endswith('exec "$@"'):
        return script.removesuffix('exec "$@"') + "exec " + rest
    return script.removesuffix(' "$@"') + (" " + rest if rest else "")
