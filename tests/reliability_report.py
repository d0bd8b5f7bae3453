"""The reliability report: a pytest plugin (loaded by tests/conftest.py) that collects what the reliability suites
check, case by case, and writes docs/reliability.md from it.

A test records its cases through the `reliability` fixture:

    def test_link_cut_during_readiness(reliability, ...):
        ...
        reliability.case("link cut during readiness", suite="faults", phase="readiness", fault="link down (h1)",
                         checked="exit 4 naming the host and step; 0 containers within the lease bound",
                         exit_code=4, cause=first_error_line, containers_left=0, tracebacks=0, seconds=23.1)

A case passes when its test passes (a case recorded by a test that then fails is listed as failed). At the end of the
session the cases are merged into `build/reliability/results.json` (a later run replaces a case of the same suite and
name, so targeted runs update their rows) and rendered to `build/reliability/reliability.md`; with
`SPARKRUN_RELIABILITY_DOC=PATH` (`make reliability` sets docs/reliability.md) also to PATH.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "build" / "reliability" / "results.json"
DOC_ENV = "SPARKRUN_RELIABILITY_DOC"
SUITES = {
    "lease": "Launch lease (watchdog on each host)",
    "faults": "Faults at every launch phase",
    "ssh": "SSH failures named as such",
    "hostile": "Hostile input",
    "config": "Bad recipes and config files",
    "concurrency": "Concurrency",
    "secrets": "Secrets",
    "hostkeys": "Host keys",
}


@dataclass
class Case:
    suite: str
    name: str
    checked: str
    phase: str = ""
    fault: str = ""  # the fault injected, or the input fed
    exit_code: int | None = None
    cause: str = ""  # the one-line error sparkrun printed
    containers_left: int | None = None
    tracebacks: int | None = None
    secrets_leaked: int | None = None
    inputs: int = 0  # hostile inputs / generated files tried
    faults: int = 0  # faults injected
    seconds: float | None = None  # a measured duration (e.g. cut -> 0 containers)
    lease_seconds: int | None = None
    test: str = ""
    passed: bool = False
    gap: str = ""  # a known gap (the test is marked xfail with this reason)
    when: str = ""


@dataclass
class CaseLog:
    test: str
    cases: list[Case] = field(default_factory=list)

    def case(self, name: str, *, suite: str, checked: str, **facts: Any) -> Case:
        item = Case(suite=suite, name=name, checked=checked, test=self.test, **facts)
        item.when = time.strftime("%Y-%m-%d %H:%M")
        if item.faults == 0 and item.fault and suite in ("faults", "lease", "ssh", "hostkeys"):
            item.faults = 1
        self.cases.append(item)
        return item


_LOGS: list[CaseLog] = []


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> Iterator[CaseLog]:
    log = CaseLog(request.node.nodeid)
    _LOGS.append(log)
    yield log


_OUTCOMES: dict[str, tuple[bool, str]] = {}  # test -> (passed, known gap: the xfail reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" or report.failed:
        gap = str(getattr(report, "wasxfail", "") or "")
        passed = report.passed and not gap
        if report.when == "call" or not passed:
            _OUTCOMES[item.nodeid] = (passed and _OUTCOMES.get(item.nodeid, (True, ""))[0], gap)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    cases = [c for log in _LOGS for c in log.cases]
    if not cases:
        return
    for case in cases:
        case.passed, case.gap = _OUTCOMES.get(case.test, (False, ""))
    merged = {(c["suite"], c["name"]): c for c in _load()}
    merged.update({(c.suite, c.name): asdict(c) for c in cases})
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".tmp")
    tmp.write_text(json.dumps(list(merged.values()), indent=1, sort_keys=True))
    tmp.replace(RESULTS)
    text = render(list(merged.values()))
    (RESULTS.parent / "reliability.md").write_text(text)
    target = os.environ.get(DOC_ENV)
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(text)


def _load() -> list[dict[str, Any]]:
    try:
        data = json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        return []
    return [d for d in data if isinstance(d, dict) and "suite" in d and "name" in d]


def _cell(value: Any) -> str:
    if value is None or value == "":
        return ""
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 160 else text[:159] + "…"


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        )
        return out.stdout.strip() or "?"
    except OSError:
        return "?"


def _summary(cases: list[dict[str, Any]]) -> list[str]:
    def total(key: str) -> int:
        return sum(int(c.get(key) or 0) for c in cases)

    by_term: dict[int, list[float]] = {}
    for c in cases:
        if c.get("suite") in ("lease", "faults") and c.get("seconds") is not None and c.get("lease_seconds"):
            by_term.setdefault(int(c["lease_seconds"]), []).append(float(c["seconds"]))
    bound_lines = [
        f"{term} s lease: {min(v):.1f}–{max(v):.1f} s over {len(v)} case(s)"
        if len(v) > 1
        else f"{term} s lease: {v[0]:.1f} s"
        for term, v in sorted(by_term.items(), reverse=True)
    ]
    failed = [c for c in cases if not c.get("passed") and not c.get("gap")]
    gaps = [c for c in cases if c.get("gap")]
    return [
        "| | |",
        "|---|---|",
        f"| cases | {len(cases)} ({len(cases) - len(failed) - len(gaps)} passed, {len(failed)} failed, "
        f"{len(gaps)} known gap{'' if len(gaps) == 1 else 's'}) |",
        f"| hostile inputs tried | {total('inputs')} |",
        f"| faults injected | {total('faults')} |",
        f"| sparkrun containers left on any host | {total('containers_left')} |",
        f"| tracebacks printed | {total('tracebacks')} |",
        f"| secrets leaked | {total('secrets_leaked')} |",
        f"| lease bound measured (cut or kill -> 0 containers) | {'; '.join(bound_lines) or 'not measured'} |",
    ]


def render(cases: list[dict[str, Any]]) -> str:
    lines = [
        "# Reliability",
        "",
        "Generated by the test suite (`make reliability`: tests/unit/reliability, tests/e2e/test_faults*.py,",
        "tests/e2e/test_hostile*.py; the plugin is tests/reliability_report.py). Do not edit by hand.",
        f"Last run: {time.strftime('%Y-%m-%d %H:%M')} at commit {_commit()}.",
        "",
        *_summary(cases),
        "",
    ]
    gaps = sorted({c["gap"] for c in cases if c.get("gap")})
    if gaps:
        lines += [
            "Known gaps (tests marked `xfail(strict=True)`: they fail the suite once fixed, to drop the mark):",
            "",
        ]
        lines += [f"- {gap}" for gap in gaps] + [""]
    for suite, title in SUITES.items():
        rows = sorted((c for c in cases if c.get("suite") == suite), key=lambda c: (c.get("phase", ""), c["name"]))
        if not rows:
            continue
        lines += [f"## {title}", "", "| case | phase | fault / input | checked | result | exit | cause |"]
        lines += ["|---|---|---|---|---|---|---|"]
        for c in rows:
            result = "pass" if c.get("passed") else ("known gap" if c.get("gap") else "**FAIL**")
            extra = []
            if c.get("containers_left") is not None:
                extra.append(f"{c['containers_left']} left")
            if c.get("seconds") is not None:
                extra.append(f"{c['seconds']:.1f} s")
            if c.get("inputs"):
                extra.append(f"{c['inputs']} inputs")
            if extra:
                result += f" ({', '.join(extra)})"
            cells = [
                c["name"],
                c.get("phase"),
                c.get("fault"),
                c.get("checked"),
                result,
                c.get("exit_code"),
                c.get("cause"),
            ]
            lines.append("| " + " | ".join(_cell(v) for v in cells) + " |")
        lines.append("")
    return "\n".join(lines)
