"""Command-line parsing driven by the real engines' flag lists (``flags/*.txt``, see flags/README.md).

Each list line is ``long-form [aliases...] value|switch``. :class:`FlagSet` loads one list and :meth:`FlagSet.parse`
accepts what the real parser accepts, in that engine's dialect (:class:`Dialect`): ``--flag=value``, unique prefixes
and ``--snake_case`` spellings where the real parser takes them, dotted sub-keys of JSON options (vLLM), attached
values of one-letter options (argparse: ``-q3``), several values for the flags the engine declares with ``nargs``.

Lenient like the engines across versions: a well-formed long flag that is not in the list (it may exist in another
version of the engine) is accepted and recorded in :attr:`Parsed.unknown` (the engines log a warning line for it);
it takes the next argument as its value unless that is an option. Flags that earlier releases had and the listed one
dropped (``flags/<name>.older.txt``, loaded with ``older=``) are matched by their exact spelling only, before any
prefix matching (argparse prefers an exact match), with their real arity (``--cuda-graph-bs 1 2 4``), and are also
recorded in :attr:`Parsed.unknown`. Malformed input the real parser rejects (a
missing value, a value given to a switch, an ambiguous prefix, an unknown short option, a stray positional) raises
:class:`UsageError`. sparkrun's own flags are checked strictly against the lists by its unit tests.
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
    attached_short: bool = False  # -q3 == -q 3 for one-letter options (argparse)
    vllm_opt_level: bool = False  # -O3 / -O 3 / -O=3 == --optimization-level 3 (vLLM's FlexibleArgumentParser)
    lenient: bool = True  # accept unknown well-formed long flags (recorded in Parsed.unknown)
    stop_at_positional: bool = False  # the first positional and everything after it are the program (mpirun)


@dataclass
class Parsed:
    values: dict[str, list[str]] = field(default_factory=dict)  # canonical name -> values (repeats appended)
    switches: dict[str, bool] = field(default_factory=dict)  # canonical name -> True, False for a negation
    positionals: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)  # canonical names in command-line order
    unknown: list[str] = field(default_factory=list)  # accepted flags that are not in the list (with their value)

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
WELL_FORMED_LONG = re.compile(r"^--[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_][A-Za-z0-9_.-]*)?$")


class FlagSet:
    def __init__(self, flags: list[Flag], aliases: dict[str, str], negations: set[str], dialect: Dialect) -> None:
        self.flags = {f.name: f for f in flags}
        self.aliases = aliases  # every spelling (incl. the canonical one) -> canonical name
        self.negations = negations  # spellings that turn a switch off
        self.dialect = dialect
        self.older: dict[str, str] = {}  # spellings of earlier releases' flags (exact match only) -> canonical name

    @classmethod
    def load(
        cls,
        *names: str,
        dialect: Dialect,
        nargs: dict[str, str] | None = None,
        extra: list[str] | None = None,
        optional_value: frozenset[str] = frozenset(),
        older: str | None = None,
    ) -> FlagSet:
        """Load flag lists ``flags/<name>.txt`` (later lists may add flags), plus ``extra`` lines. Flags in
        ``optional_value`` take 0 or 1 value whatever the list says (clap's ``num_args = 0..=1``). ``older`` names a
        list of flags earlier releases had (``flags/<older>.txt``): accepted by exact spelling, never as a prefix."""
        lines: list[str] = []
        for name in names:
            lines += (FLAGS_DIR / f"{name}.txt").read_text().splitlines()
        lines += extra or []
        current = cls._from_lines(lines, dialect, nargs, optional_value)
        if older is not None:
            former = cls._from_lines((FLAGS_DIR / f"{older}.txt").read_text().splitlines(), dialect, nargs, frozenset())
            fresh = {s: c for s, c in former.aliases.items() if s not in current.aliases}
            current.older = fresh
            current.flags.update({c: former.flags[c] for c in set(fresh.values()) if c not in current.flags})
            current.negations |= former.negations & set(fresh)
        return current

    @classmethod
    def _from_lines(
        cls, lines: list[str], dialect: Dialect, nargs: dict[str, str] | None, optional_value: frozenset[str]
    ) -> FlagSet:
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
            if canonical in optional_value:
                flags.append(Flag(canonical, True, "?"))
            else:
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
        if norm in self.aliases or norm in self.older:
            return norm
        if self.dialect.abbrev and norm.startswith("--") and len(norm) > 2:
            matches = sorted({s for s in self.aliases if s.startswith("--") and s.startswith(norm)})
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                shown = ", ".join(matches[:6]) + (", ..." if len(matches) > 6 else "")
                raise UsageError(f"ambiguous option: {spelling} could match {shown}")
        return None

    def canonical(self, spelling: str) -> str:
        """The canonical name of a spelling `lookup` returned."""
        return self.aliases.get(spelling) or self.older[spelling]

    def _is_option(self, token: str) -> bool:
        return token.startswith("-") and token != "-" and not re.fullmatch(r"-\d+(\.\d+)?", token)

    # -- parsing -----------------------------------------------------------------------------------------------
    def parse(self, argv: list[str]) -> Parsed:
        out = Parsed()
        i = 0
        while i < len(argv):
            token = argv[i]
            i += 1
            if token == "--" or (not self._is_option(token) and self.dialect.stop_at_positional):
                out.positionals += argv[i:] if token == "--" else argv[i - 1 :]
                break
            if not self._is_option(token):
                out.positionals.append(token)
                if len(out.positionals) > self.dialect.max_positionals:
                    raise UsageError(f"unrecognized arguments: {token}")
                continue
            i = self._option(out, argv, i, token)
        return out

    def _option(self, out: Parsed, argv: list[str], i: int, token: str) -> int:
        """Parse the option `token` (argv[i - 1]) into `out`; the index of the next argument."""
        spelling, eq, inline = token, False, ""
        if self.dialect.equals and "=" in token:
            spelling, _, inline = token.partition("=")
            eq = True
        if self.dialect.vllm_opt_level and re.fullmatch(r"-O(=?\w+)?", token):
            spelling, eq, inline = self._opt_level(token)
        known = self.lookup(spelling)
        if known is None and self.dialect.dotted_config and "." in spelling:
            after = self._dotted(out, argv, i, spelling, eq, inline)
            if after is not None:
                return after
        if known is None and self.dialect.attached_short and re.fullmatch(r"-[A-Za-z]\S+", token):
            short = self.lookup(token[:2])
            if short is not None and self.flags[self.canonical(short)].takes_value:
                spelling, eq, inline, known = token[:2], True, token[2:], short
        if known is None:
            return self._unknown(out, argv, i, token, spelling, eq, inline)
        flag = self.flags[self.canonical(known)]
        out.order.append(flag.name)
        if not flag.takes_value:
            if eq:
                raise UsageError(f"argument {known}: ignored explicit argument '{inline}'")
            out.switches[flag.name] = known not in self.negations
            out.unknown += [known] if known in self.older else []
            return i
        values, i = self._take_values(flag, argv, i, known, eq, inline)
        out.values.setdefault(flag.name, []).extend(values)
        out.unknown += [" ".join([known, *values])] if known in self.older else []
        return i

    def _opt_level(self, token: str) -> tuple[str, bool, str]:
        """vLLM: `-O3`, `-O=3` and `-O 3` mean `--optimization-level 3`."""
        rest = token[2:].lstrip("=")
        return "--optimization-level", bool(rest), rest

    def _dotted(self, out: Parsed, argv: list[str], i: int, spelling: str, eq: bool, inline: str) -> int | None:
        """`--json-option.key value` (vLLM: any JSON-valued option): the index after it, or None if not one."""
        head = spelling.split(".", 1)[0]
        base = self.lookup(head)
        if base is None or not self.flags[self.canonical(base)].takes_value:
            return None
        value, i = self._take_one(argv, i, spelling, eq, inline)
        name = self.canonical(base)
        out.values.setdefault(name, []).append(f"{spelling[len(head) + 1 :]}={value}")
        out.order.append(name)
        return i

    def _unknown(self, out: Parsed, argv: list[str], i: int, token: str, spelling: str, eq: bool, inline: str) -> int:
        """A flag not in the list: accepted (with the next argument as its value) when it is a well-formed long flag
        and the dialect is lenient; otherwise the real parser's error."""
        if not (self.dialect.lenient and WELL_FORMED_LONG.match(spelling)):
            raise UsageError(f"unrecognized arguments: {token}")
        if not eq and i < len(argv) and not self._is_option(argv[i]):
            out.unknown.append(f"{spelling} {argv[i]}")
            return i + 1
        out.unknown.append(f"{spelling}={inline}" if eq else spelling)
        return i

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
