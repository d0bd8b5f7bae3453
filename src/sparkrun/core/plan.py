"""A plan: the steps a command would run, as data. Built by pure planners, printed by `--dry-run`, run by `apply`.

A `Step` is one script on one host (a `sparkrun/shell/*.sh` name plus its values), with a one-line summary. Steps of
one phase run in parallel; phases run in order, each only when the one before succeeded. A step that would change
nothing is a no-op with its reason (`noop`), decided from probed facts. `undo` steps run on every host when a step
fails or the user interrupts (e.g. remove the containers a launch started).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sparkrun.hosts import Host
from sparkrun.secrets import MASK
from sparkrun.shell import ParamValue, Script, render_script


@dataclass(frozen=True)
class Step:
    host: Host
    script: str  # sparkrun/shell/<script>.sh
    values: Mapping[str, ParamValue]
    summary: str  # one line: what this step does, for the dry-run and progress
    phase: str  # steps of the same phase run in parallel
    stdin: bytes = field(default=b"", repr=False)  # data the script reads (secrets, tar streams); never shown
    timeout: float | None = None
    noop: str | None = None  # set: nothing runs, and this says why
    stream: bool = False  # the script reports progress (`@sr` lines) while it runs
    secret: frozenset[str] = frozenset()  # names of values never shown
    detail: tuple[str, ...] = ()  # extra lines for the dry-run (e.g. the exact `docker run` argv)
    events_to_stderr: bool = False

    def render(self) -> Script:
        return render_script(self.script, self.values, stdin=self.stdin, events_to_stderr=self.events_to_stderr)

    def shown_values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.values.items():
            if key in self.secret:
                out[key] = MASK
            elif isinstance(value, str | int | float | bool) or value is None:
                out[key] = value
            else:
                out[key] = list(value)
        return out

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "phase": self.phase,
            "host": self.host.address,
            "script": self.script,
            "summary": self.summary,
        }
        if self.noop:
            data["noop"] = self.noop
        if self.detail:
            data["detail"] = list(self.detail)
        if self.stdin:
            data["stdin_bytes"] = len(self.stdin)
        return data


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    undo: tuple[Step, ...] = ()
    notes: tuple[str, ...] = ()

    def phases(self) -> list[tuple[str, list[Step]]]:
        """Steps grouped by phase, phases in the order they first appear."""
        order: list[str] = []
        groups: dict[str, list[Step]] = {}
        for step in self.steps:
            if step.phase not in groups:
                order.append(step.phase)
                groups[step.phase] = []
            groups[step.phase].append(step)
        return [(name, groups[name]) for name in order]

    def then(self, other: Plan) -> Plan:
        return Plan(self.steps + other.steps, self.undo + other.undo, self.notes + other.notes)

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": [s.to_json() for s in self.steps],
            "undo": [s.to_json() for s in self.undo],
            "notes": list(self.notes),
        }


def steps_on(
    hosts: Sequence[Host],
    script: str,
    values: Mapping[str, ParamValue],
    *,
    summary: str,
    phase: str,
    timeout: float | None = None,
) -> tuple[Step, ...]:
    """The same script on several hosts, one step each."""
    return tuple(
        Step(host=h, script=script, values=values, summary=summary.format(host=h.address), phase=phase, timeout=timeout)
        for h in hosts
    )
