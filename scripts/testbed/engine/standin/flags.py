"""Command-line parsing driven by the real engines' flag lists (``flags/*.txt``, see flags/README.md).

Each list line is ``long-form [aliases...] value|switch``. :class:`FlagSet` loads one list and :meth:`FlagSet.parse`
accepts exactly what the real parser accepts, in that engine's dialect (:class:`Dialect`): ``--flag=value``,
unique prefixes and ``--snake_case`` spellings where the real parser takes them, several values for the flags the
engine declares with ``nargs``. Anything else raises :class:`UsageError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

FLAGS_DIR = Path(__file__).resolve().parent / "flags"


class UsageError(Exception):
    """A command line the real engine would reject."""


@dataclass(frozen=True)
class Flag:
    name: str  # canonical long form, e.g. "--tensor-parallel-size"
    takes_value: bool
    nargs: str = "1"  # "1", "?" (0 or 1), "+" (1 or more), "*" (0 or more) or "2"


@dataclass(frozen=True)
class Dialect:
    equals: bool = True  # --flag=value
    abbrev: bool = False  # unique prefixes (argparse allow_abbrev)
    snake_case: bool = False  # --max_model_len == --max-model-len (vLLM)
    dotted_config: bool = False  # --compilation-config.mode 3, -cc.mode 3 (vLLM)
    dash_values: bool = False  # a value may start with "-" (llama.cpp, click); argparse refuses it
    max_positionals: int = 0


@dataclass
class Parsed:
    values: dict[str, list[str]] = field(default_factory=dict)  # canonical name -> values (repeats appended)
    switches: dict[str, bool] = field(default_factory=dict)  # canonical name -> True, False for a negation
    positionals: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)  # canonical names in command-line order

    def get(self, name: str, default: str | None = None) -> str | None:
        vals = self.values.get(name)
        return vals[-1] if vals else default

    def get_all(self, name: str) -> list[str]:
        return list(self.values.get(name, []))

    def get_int(self, name: str, default: int) -> int:
        raw = self.get(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise UsageError(f"argument {name}: invalid int value: '{raw}'") from None

    def flag(self, name: str) -> bool:
        return self.switches.get(name, False)

    def given(self, name: str) -> bool:
        return name in self.values or name in self.switches


NEGATION = re.compile(r"^(--no-|--disable-|-no)")


class FlagSet:
    def __init__(self, flags: list[Flag], aliases: dict[str, str], negations: set[str], dialect: Dialect) -> None:
        self.flags = {f.name: f for f in flags}
        self.aliases = aliases  # every spelling (incl. the canonical one) -> canonical name
        self.negations = negations  # spellings that turn a switch off
        self.dialect = dialect

    @classmethod
    def load(
        cls,
        *names: str,
        dialect: Dialect,
        nargs: dict[str, str] | None = None,
        extra: list[str] | None = None,
    ) -> FlagSet:
        """Load flag lists ``flags/<name>.txt`` (later lists may add flags), plus ``extra`` lines."""
        lines: list[str] = []
        for name in names:
            lines += (FLAGS_DIR / f"{name}.txt").read_text().splitlines()
        lines += extra or []
        flags: list[Flag] = []
        aliases: dict[str, str] = {}
        negations: set[str] = set()
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            *spellings, kind = line.split()
            if kind not in ("value", "switch") or not spellings:
                raise ValueError(f"bad flag line: {raw!r}")
            canonical = spellings[0]
            flags.append(Flag(canonical, kind == "value", (nargs or {}).get(canonical, "1")))
            for s in spellings:
                aliases.setdefault(s, canonical)
                if s != canonical and NEGATION.match(s) and not NEGATION.match(canonical):
                    negations.add(s)
                if canonical.startswith("--enable-") and s.startswith("--disable-"):
                    negations.add(s)
        return cls(flags, aliases, negations, dialect)

    # -- lookup ------------------------------------------------------------------------------------------------
    def _normalize(self, spelling: str) -> str:
        if self.dialect.snake_case and spelling.startswith("--"):
            return "--" + spelling[2:].replace("_", "-")
        return spelling

    def lookup(self, spelling: str) -> str | None:
        """The spelling as known to the list (exact, snake_case, or a unique prefix), or None."""
        norm = self._normalize(spelling)
        if norm in self.aliases:
            return norm
        if self.dialect.abbrev and norm.startswith("--") and len(norm) > 2:
            matches = sorted({s for s in self.aliases if s.startswith("--") and s.startswith(norm)})
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                shown = ", ".join(matches[:6]) + (", ..." if len(matches) > 6 else "")
                raise UsageError(f"ambiguous option: {spelling} could match {shown}")
        return None

    def _is_option(self, token: str) -> bool:
        return token.startswith("-") and token != "-" and not re.fullmatch(r"-\d+(\.\d+)?", token)

    # -- parsing -----------------------------------------------------------------------------------------------
    def parse(self, argv: list[str]) -> Parsed:
        out = Parsed()
        i = 0
        while i < len(argv):
            token = argv[i]
            i += 1
            if token == "--":
                out.positionals += argv[i:]
                break
            if not self._is_option(token):
                out.positionals.append(token)
                if len(out.positionals) > self.dialect.max_positionals:
                    raise UsageError(f"unrecognized arguments: {token}")
                continue
            spelling, eq, inline = token, False, ""
            if self.dialect.equals and "=" in token:
                spelling, _, inline = token.partition("=")
                eq = True
            known = self.lookup(spelling)
            if known is None and self.dialect.dotted_config and "." in spelling:
                base = self.lookup(spelling.split(".", 1)[0])
                if base is not None and self.flags[self.aliases[base]].name.endswith("-config"):
                    value, i = self._take_one(argv, i, spelling, eq, inline)
                    name = self.aliases[base]
                    out.values.setdefault(name, []).append(f"{spelling[len(spelling.split('.', 1)[0]) + 1 :]}={value}")
                    out.order.append(name)
                    continue
            if known is None:
                raise UsageError(f"unrecognized arguments: {token}")
            flag = self.flags[self.aliases[known]]
            out.order.append(flag.name)
            if not flag.takes_value:
                if eq:
                    raise UsageError(f"argument {known}: ignored explicit argument '{inline}'")
                out.switches[flag.name] = known not in self.negations
                continue
            values, i = self._take_values(flag, argv, i, known, eq, inline)
            out.values.setdefault(flag.name, []).extend(values)
        return out

    def _take_one(self, argv: list[str], i: int, spelling: str, eq: bool, inline: str) -> tuple[str, int]:
        if eq:
            return inline, i
        if i < len(argv) and (self.dialect.dash_values or not self._is_option(argv[i])):
            return argv[i], i + 1
        raise UsageError(f"argument {spelling}: expected one argument")

    def _take_values(
        self, flag: Flag, argv: list[str], i: int, spelling: str, eq: bool, inline: str
    ) -> tuple[list[str], int]:
        if flag.nargs == "1":
            value, i = self._take_one(argv, i, spelling, eq, inline)
            return [value], i
        if flag.nargs == "2":
            if eq:
                raise UsageError(f"argument {spelling}: expected 2 arguments")
            if i + 2 > len(argv):
                raise UsageError(f"argument {spelling}: expected 2 arguments")
            return argv[i : i + 2], i + 2
        values = [inline] if eq else []
        while i < len(argv) and not self._is_option(argv[i]) and not (eq and flag.nargs == "?"):
            values.append(argv[i])
            i += 1
            if flag.nargs == "?":
                break
        if flag.nargs == "+" and not values:
            raise UsageError(f"argument {spelling}: expected at least one argument")
        return values, i
