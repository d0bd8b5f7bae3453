"""A rendered `command:` as the container's argv (the core runs it as the main process, no shell).

A plain command is split with `shlex`. When the command needs a shell (`export A=1; exec vllm serve …`, `$VAR`,
pipes, `FOO=1 cmd`), argv is `bash -c '<prelude>; exec "$@"' sparkrun-serve vllm serve …` when its last statement is a
plain command (the engine's argv stays visible and runtimes can append flags), else `bash -c '<script> "$@"'
sparkrun-serve`, so arguments a runtime appends still reach the last command.
"""

from __future__ import annotations

import re
import shlex

from sparkrun.runtimes.base import SHELL_WRAPPER_ARGV0

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
