"""The recipe's `readiness:` settings, typed: how long each phase of the readiness check may take.

```yaml
readiness: {port_timeout_s: 1800, health_timeout_s: 900, inference: true, inference_timeout_s: 1200,
            inference_prompt: "Reply with exactly: sparkrun-ready", rendezvous_timeout_s: 600}
```
Timeouts are seconds (a number, or a number written as a string; fractions round up). `inference` is a boolean.
What the older sparkrun refuses is an error here too (a timeout that is no number, a prompt that is no text, an
unknown `inference_style`); what it accepts and sparkrun cannot use is a warning: a timeout of 0 or less (the
default applies), a style other than the streamed chat completion sparkrun probes with. Two warnings mark what
sparkrun reads although the older tool refuses it: an unknown key (ignored) and a quoted boolean (`"false"`).
`rendezvous_timeout_s` is sparkrun's own key (the older tool refuses it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from sparkrun.errors import RecipeError
from sparkrun.recipes.model import Issue

DEFAULT_PROMPT = "Reply with exactly: sparkrun-ready"
STYLES = ("auto", "openai-chat-stream-v1", "openai-responses-stream-v1", "anthropic-messages-stream-v1")
PROBED_STYLES = ("auto", "openai-chat-stream-v1")
# recipe key -> Readiness field
TIMEOUTS = {
    "port_timeout_s": "port_timeout",
    "health_timeout_s": "health_timeout",
    "inference_timeout_s": "inference_timeout",
    "rendezvous_timeout_s": "rendezvous_timeout",
}
KNOWN_KEYS = frozenset({*TIMEOUTS, "inference", "inference_prompt", "inference_style"})
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


@dataclass(frozen=True)
class Readiness:
    port_timeout: int = 1800
    health_timeout: int = 900
    inference: bool = True
    inference_timeout: int = 1200
    prompt: str = DEFAULT_PROMPT
    rendezvous_timeout: int = 600  # a rank's wait_port must open within this

    @classmethod
    def from_recipe(cls, data: Mapping[str, Any] | None, where: Callable[[str], str] | None = None) -> Readiness:
        """The typed settings; raises `RecipeError` for the first error (warnings are `parse_readiness`'s)."""
        readiness, issues = parse_readiness(data, where or (lambda _key: "recipe"))
        for issue in issues:
            if issue.severity == "error":
                raise RecipeError(issue.line(), hint=issue.hint)
        return readiness

    @property
    def budget(self) -> float:
        """The longest a readiness step may run (all phases), plus slack."""
        return float(self.port_timeout + self.health_timeout + (self.inference_timeout if self.inference else 0) + 60)


def _timeout(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


class _Parser:
    def __init__(self, where: Callable[[str], str]) -> None:
        self.where = where
        self.issues: list[Issue] = []
        self.values: dict[str, Any] = {}

    def issue(self, severity: Any, code: str, key: str, message: str, hint: str | None = None) -> None:
        path = f"readiness.{key}"
        self.issues.append(Issue(severity, code, message, self.where(path), path, hint))

    def timeout(self, key: str, value: Any) -> None:
        number = _timeout(value)
        if number is None:
            self.issue(
                "error",
                "invalid-readiness",
                key,
                f"expected a number of seconds, got {value!r}",
                "write whole seconds, e.g. 1800",
            )
        elif number <= 0:
            default = getattr(Readiness(), TIMEOUTS[key])
            self.issue(
                "warning",
                "readiness-value",
                key,
                f"{value!r} is no time limit sparkrun can wait for; the default {default} s applies",
                "give a positive number of seconds",
            )
        else:
            self.values[TIMEOUTS[key]] = math.ceil(number)

    def inference(self, value: Any) -> None:
        if isinstance(value, bool):
            self.values["inference"] = value
            return
        word = str(value).strip().lower() if isinstance(value, str | int) else ""
        if word in _TRUE | _FALSE:
            self.values["inference"] = word in _TRUE
            self.issue(
                "warning",
                "readiness-quoted-boolean",
                "inference",
                f"{value!r} read as {str(word in _TRUE).lower()}; the older sparkrun refuses anything but true/false",
                "write true or false without quotes",
            )
        else:
            self.issue("error", "invalid-readiness", "inference", f"expected true or false, got {value!r}")

    def other(self, key: str, value: Any) -> None:
        if key == "inference_prompt":
            if isinstance(value, str) and value.strip():
                self.values["prompt"] = value
            else:
                self.issue("error", "invalid-readiness", key, f"expected a non-empty text, got {value!r}")
        elif key == "inference_style":
            if value not in STYLES:
                self.issue("error", "invalid-readiness", key, f"unknown style {value!r}; one of {', '.join(STYLES)}")
            elif value not in PROBED_STYLES:
                self.issue(
                    "warning",
                    "readiness-value",
                    key,
                    f"sparkrun probes with a streamed chat completion (openai-chat-stream-v1), not {value}",
                )
        else:
            self.issue(
                "warning",
                "unknown-readiness-key",
                key,
                f"unknown readiness setting {key!r}: ignored",
                f"known: {', '.join(sorted(KNOWN_KEYS))}",
            )


def parse_readiness(data: Mapping[str, Any] | None, where: Callable[[str], str]) -> tuple[Readiness, list[Issue]]:
    """The typed settings (defaults where a value is missing or unusable) and what is wrong with the mapping."""
    parser = _Parser(where)
    for key, value in (data or {}).items():
        if value is None:
            continue
        if key in TIMEOUTS:
            parser.timeout(key, value)
        elif key == "inference":
            parser.inference(value)
        else:
            parser.other(str(key), value)
    known = {f.name for f in fields(Readiness)}
    return Readiness(**{k: v for k, v in parser.values.items() if k in known}), parser.issues
