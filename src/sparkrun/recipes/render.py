"""The one templater: `command:`, hooks (`pre_exec`, `post_exec`, `post_commands`) and `env:` values.

Placeholder grammar (one pass, left to right, so a substituted value is never scanned again as template text):
- `{name}` / `{name.field}` (name an identifier): the setting's value. Strings are themselves rendered
  (`base_url: "http://localhost:{port}"`), mappings/lists become compact JSON, booleans `true`/`false`.
- `{config.NAME}`: the setting NAME, also where bare names are not substituted (`env:` values).
- `{launch.NAME}`: a per-rank launch value (`node_rank`, `node_host`, `num_nodes`, `head_ip`, `container_name`, ...;
  `settings_keys.LAUNCH_TOKEN_KEYS`), filled by orchestration through `render_launch_tokens`.
- `${...}` and `$NAME` are the shell's and are left alone (`"${PATH:-}"`, `"${NODE_IP}"`), except in `env:` values,
  which are no shell text.
- Any other brace is literal text: `'{"level": 3}'`, `'{"method":"mtp","num_speculative_tokens":3}'`.
- With `escapes=True` (v1 recipes, or a v2 command that uses `{{`), `{{` and `}}` are literal `{` and `}`.

A placeholder that names nothing is listed in `Rendered.missing`: commands and hooks refuse it; `env:` values keep
it as written (a value may legitimately contain braces).

Hooks are shell text, so a value substituted into one is quoted for where it lands (`quote=True`): unquoted
`shlex.quote`; inside '...' a `'` becomes `'\\''`; inside "..." the characters `\\ " $ `` ` are escaped. A normal value
(`Qwen/Qwen3-1.7B`, `10.0.0.1`, `http://10.0.0.1:8000/v1`) renders unchanged; a hostile one (`$(touch x)`, `;`,
quotes, newlines) reaches the hook's command as one literal word.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sparkrun.errors import RecipeError

IDENT = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_TOKEN = re.compile(r"\{\{|\}\}|\$\{|\{(" + IDENT + r")\}")
_ENV_TOKEN = re.compile(r"\{\{|\}\}|\{(" + IDENT + r")\}")
MAX_DEPTH = 10
_DOUBLE_QUOTED_SPECIAL = re.compile(r'([\\"$`])')


@dataclass(frozen=True)
class Rendered:
    text: str
    missing: tuple[str, ...] = ()  # placeholders that named nothing, in order of appearance


@dataclass(frozen=True)
class Scope:
    """What placeholders may name. `names` None: bare `{name}`s are literal text (as in `env:` values)."""

    names: Mapping[str, Any] | None = None
    config: Mapping[str, Any] | None = None  # `{config.NAME}`
    launch: Mapping[str, Any] | None = None  # `{launch.NAME}`
    data: Mapping[str, Any] | None = None  # bare names whose values are data, never templates (launch values)


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


# ---- shell quoting context (hooks) -------------------------------------------------------------------------------
class ShellQuotes:
    """The bash quoting context at the end of the text fed so far: `plain`, `single` ('...'), `double` ("..."),
    `ansi` ($'...'), `sub` ($(...)) or `backtick`. Enough of bash's rules for substituting values into hooks."""

    def __init__(self) -> None:
        self.stack: list[list[Any]] = [["plain", 0]]  # [context, open parens inside a $( )]
        self.escaped = False
        self.prev = ""

    @property
    def context(self) -> str:
        return str(self.stack[-1][0])

    def feed(self, text: str) -> None:
        for ch in text:
            self._char(ch)
            self.prev = "" if self.escaped else ch

    def _char(self, ch: str) -> None:
        top = self.context
        if self.escaped:
            self.escaped = False
        elif top == "single":
            if ch == "'":
                self.stack.pop()
        elif top in {"ansi", "double"} or ch == "\\":
            self._quoted(top, ch)
        else:
            self._unquoted(top, ch)

    def _quoted(self, top: str, ch: str) -> None:
        if ch == "\\":
            self.escaped = True
        elif (top == "ansi" and ch == "'") or (top == "double" and ch == '"'):
            self.stack.pop()
        elif top == "double" and ch == "(" and self.prev == "$":
            self.stack.append(["sub", 0])
        elif top == "double" and ch == "`":
            self.stack.append(["backtick", 0])

    def _unquoted(self, top: str, ch: str) -> None:
        if ch == "'":
            self.stack.append(["ansi" if self.prev == "$" else "single", 0])
        elif ch == '"':
            self.stack.append(["double", 0])
        elif ch == "`" and top == "backtick":
            self.stack.pop()
        elif ch == "`":
            self.stack.append(["backtick", 0])
        elif ch == "(" and self.prev == "$":
            self.stack.append(["sub", 0])
        elif ch == "(" and top == "sub":
            self.stack[-1][1] += 1
        elif ch == ")" and top == "sub":
            if self.stack[-1][1] == 0:
                self.stack.pop()
            else:
                self.stack[-1][1] -= 1


def shell_quote(value: str, context: str) -> str:
    """`value` as literal text at a point of a bash script whose quoting context is `context`."""
    if context == "single":
        return value.replace("'", "'\\''")
    if context == "double":
        return _DOUBLE_QUOTED_SPECIAL.sub(r"\\\1", value)
    if context == "ansi":
        return value.replace("\\", "\\\\").replace("'", "\\'")
    quoted = shlex.quote(value)
    if context == "backtick":  # backslash, backtick and $ are special once more inside `...`
        return _DOUBLE_QUOTED_SPECIAL.sub(lambda m: m.group(0) if m.group(0) == '"' else "\\" + m.group(0), quoted)
    return quoted


# ---- the renderer ------------------------------------------------------------------------------------------------
class _Renderer:
    def __init__(self, scope: Scope, *, shell_params: bool) -> None:
        self.scope = scope
        self.shell_params = shell_params
        self.missing: list[str] = []

    def find(self, name: str) -> tuple[Any, bool]:
        """(value, is_template) for a placeholder name; value None when it names nothing."""
        head, _, rest = name.partition(".")
        space = {"config": self.scope.config, "launch": self.scope.launch}.get(head) if rest else None
        if space is not None:
            return lookup(space, rest), head == "config"
        if head in ("config", "launch") and rest:
            return None, False
        if self.scope.data is not None and lookup(self.scope.data, name) is not None:
            return lookup(self.scope.data, name), False
        if self.scope.names is None:
            return None, False
        return lookup(self.scope.names, name), True

    def value(self, name: str, stack: tuple[str, ...]) -> str | None:
        if name in stack:
            raise RecipeError(f"placeholder cycle: {' -> '.join(f'{{{n}}}' for n in (*stack, name))}")
        if len(stack) >= MAX_DEPTH:
            raise RecipeError(f"placeholders nested deeper than {MAX_DEPTH}: {' -> '.join(stack)}")
        found, template = self.find(name)
        if found is None:
            return None
        if isinstance(found, str) and template:
            nested = _Renderer(
                Scope(self.scope.names or self.scope.config, self.scope.config, self.scope.launch, self.scope.data),
                shell_params=True,
            )
            text = nested.render(found, escapes=False, quotes=None, stack=(*stack, name))
            self.missing += [m for m in nested.missing if m not in self.missing]
            return text
        return format_value(found)

    def render(self, text: str, *, escapes: bool, quotes: ShellQuotes | None, stack: tuple[str, ...] = ()) -> str:
        out: list[str] = []
        pos = 0
        for match in (_TOKEN if self.shell_params else _ENV_TOKEN).finditer(text):
            if match.start() < pos:  # inside a `${...}` already copied
                continue
            literal = text[pos : match.start()]
            token = match.group(0)
            pos = match.end()
            if token == "${":
                pos = _skip_shell_parameter(text, match.start())
                literal += text[match.start() : pos]
            elif token in ("{{", "}}"):
                literal += token[0] if escapes else token
            out.append(literal)
            if quotes is not None:
                quotes.feed(literal)
            if match.group(1):
                out.append(self._substitute(match.group(1), token, quotes, stack))
        out.append(text[pos:])
        return "".join(out)

    def _substitute(self, name: str, token: str, quotes: ShellQuotes | None, stack: tuple[str, ...]) -> str:
        rendered = self.value(name, stack)
        if rendered is None:
            if name not in self.missing:
                self.missing.append(name)
            if quotes is not None:
                quotes.feed(token)
            return token
        return rendered if quotes is None else shell_quote(rendered, quotes.context)


def render_template(
    text: str,
    values: Mapping[str, Any] | None,
    *,
    escapes: bool = False,
    config: Mapping[str, Any] | None = None,
    launch: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    quote: bool = False,
) -> Rendered:
    """Substitute placeholders; never raises for unknown names (they are listed in `missing`). `values` are the bare
    names (None: bare names stay literal); `config` defaults to `values`; `quote` shell-quotes substituted values."""
    scope = Scope(values, values if config is None else config, launch, data)
    renderer = _Renderer(scope, shell_params=values is not None)
    result = renderer.render(text, escapes=escapes, quotes=ShellQuotes() if quote else None)
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


def render_hook(text: str, settings: Mapping[str, Any], launch_values: Mapping[str, Any]) -> str:
    """A hook with its placeholders filled and shell-quoted for where they stand: settings plus launch-time values
    (`head_host`, `head_ip`, `port`, `cluster_id`, `container_name`, `cache_dir`, `base_url`), the latter winning and
    used as data (never rendered as templates). Unknown names raise."""
    launch = {k: v for k, v in launch_values.items() if v is not None}
    rendered = render_template(text, settings, escapes="{{" in text, launch=launch, data=launch, quote=True)
    if rendered.missing:
        name = rendered.missing[0]
        known = sorted({*settings, *launch})
        raise RecipeError(
            f"hook: placeholder {{{name}}} names nothing (known: {', '.join(known[:12])}, ...)",
            hint=f"define `{name}` under defaults: or write the text without braces",
        )
    return rendered.text


def render_env(env: Mapping[str, str], settings: Mapping[str, Any]) -> dict[str, str]:
    """`{config.NAME}` in recipe `env:` values (unknown names and every other brace stay as written)."""
    return {name: render_template(value, None, config=settings).text for name, value in env.items()}


def render_launch_tokens(env: Mapping[str, str], values: Mapping[str, Any]) -> dict[str, str]:
    """`{launch.NAME}` in env values, per rank (`node_rank`, `head_ip`, `num_nodes`, `container_name`, ...). Unknown
    names stay as written. What orchestration calls for each rank's container env."""
    known = {k: v for k, v in values.items() if v is not None}
    return {name: render_template(value, None, config={}, launch=known).text for name, value in env.items()}
