"""What one `sparkrun run` of a corpus recipe came to: ready, failed for a documented expected reason, or unexpected.

Pure: the input is what the run left behind (exit status, stdout, stderr, whether the wall-clock cap ended it,
containers still on the hosts afterwards, the text of the recipe's container hooks); the output is a `Verdict`. The
expected reasons are the SHORT list in `REASONS` (documented in recipes/README.md, "Corpus end-to-end run"); each is
recognised only from sparkrun's own one-line error (plus its hint or the failing hook's output and text) and only with
the exit status that error class has, so a new failure mode never hides behind a known reason. `recipe-defect` is
the one reason given per recipe (`KNOWN_DEFECTS`), with the exact error expected.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["ready", "expected", "unexpected"]

EXIT_INPUT = 3  # sparkrun's ExitCode.INPUT: bad recipe, config, too few hosts, unknown runtime
EXIT_WORKLOAD = 5  # ExitCode.WORKLOAD: the engine or a hook failed
EXIT_COMMAND_NOT_FOUND = 127  # bash: the command (or an interpreter path) does not exist
HF_HUB_IN_CONTAINER = "/cache/huggingface/hub/models--"  # the model's files, where sparkrun mounts the HF cache


@dataclass(frozen=True)
class Reason:
    code: str
    title: str  # short, for table headers
    why: str  # why a corpus recipe may fail this way on the test cluster without anything being wrong


REASONS: tuple[Reason, ...] = (
    Reason(
        "mods-not-added",
        "mods not added",
        "the recipe's `mods:` live in a registry (or a registry's mods directory) that is not added or not "
        "downloaded here: the corpus snapshots hold recipes only, and the `eugr` registry is not downloaded",
    ),
    Reason(
        "too-few-hosts",
        "too few hosts",
        "tensor_parallel x pipeline_parallel needs more hosts than the test cluster has",
    ),
    Reason(
        "node-range",
        "outside own node range",
        "the recipe's parallelism contradicts its own min_nodes/max_nodes (e.g. tensor_parallel 4 with "
        "max_nodes 1 on one-GPU hosts): it cannot start on any cluster of DGX Sparks",
    ),
    Reason(
        "hook-needs-real-engine",
        "hook needs real image/model",
        "a `pre_exec`/`post_exec` hook (run in the container) needs what only the real engine image or the model "
        "provides: a program the stand-in image lacks (the hook exits 127: `curl`, the image's own Python "
        "environment), or the model's files in the Hugging Face cache (the hook names a path under "
        f"`{HF_HUB_IN_CONTAINER}…`; the test hosts hold no weights)",
    ),
    Reason(
        "unknown-runtime",
        "unknown runtime",
        "the recipe names a runtime that no installed plugin provides (it comes from the registry's own plugin)",
    ),
    Reason(
        "recipe-defect",
        "recipe defect",
        "the real engine refuses the recipe's own command as written; listed per recipe in `KNOWN_DEFECTS` with "
        "the exact error expected, so any other failure of that recipe stays unexpected",
    ),
)
REASON_CODES = tuple(r.code for r in REASONS)


@dataclass(frozen=True)
class KnownDefect:
    expect: str  # text sparkrun's failure output (error line or engine log tail) contains
    why: str


# Keyed by "<corpus repository>/<path in it>".
KNOWN_DEFECTS: Mapping[str, KnownDefect] = {
    "styles01+sparkrun-recipes/recipes/qwen-38-27b-nvfp4-eagle-sglang.yaml": KnownDefect(
        "error: unrecognized arguments: RadixArk/Qwen3.8-27B-NVFP4",
        '`served_model_name: "qwen38-27b RadixArk/Qwen3.8-27B-NVFP4"` fills `--served-model-name '
        "{served_model_name}` with two words, but SGLang's --served-model-name takes one name in every release "
        "(vLLM's takes several): SGLang stops with `unrecognized arguments`",
    ),
}


@dataclass(frozen=True)
class RunRecord:
    """What one run left behind."""

    exit_code: int | None  # None when the wall-clock cap ended it
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False
    leftovers: tuple[str, ...] = ()  # containers of sparkrun jobs still on the hosts after the run (and its stop)
    stop_error: str | None = None  # `sparkrun stop JOB` after ready failed
    hooks: tuple[tuple[str, str], ...] = ()  # (label, command) of the recipe's container hooks, when one failed
    known_defect: KnownDefect | None = None
    unknown_flags: tuple[str, ...] = ()  # flags the stand-ins accepted with a warning (a ready job's logs)
    cap_s: float = 0.0  # the wall-clock cap the run had


@dataclass(frozen=True)
class Verdict:
    status: Status
    reason: str | None = None  # a code of REASONS when status == "expected"
    line: str = ""  # the error line (or what went wrong) for failures; the endpoint for ready
    details: tuple[str, ...] = field(default=())
    what: str = ""  # short: what exactly matched the expected reason


@dataclass(frozen=True)
class ErrorReport:
    """sparkrun's failure output: `error: ...`, `  | detail` lines, `hint: ...`."""

    line: str
    hint: str
    detail: tuple[str, ...]


def parse_error(stderr: str) -> ErrorReport | None:
    lines = stderr.splitlines()
    at = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith("error: ")), None)
    if at is None:
        return None
    detail: list[str] = []
    hint = ""
    for follow in lines[at + 1 :]:
        if follow.startswith("  | "):
            detail.append(follow[4:])
        elif follow.startswith("hint: "):
            hint = follow[len("hint: ") :]
        else:
            break
    return ErrorReport(lines[at][len("error: ") :], hint, tuple(detail))


_MOD_MISSING = re.compile(r"mods\[\d+\]: no directory '([^']+)' with a run\.sh$")
_MOD_HINT = re.compile(r"registry '[^']+' is not (added|downloaded)|has no \S+/ directory")
_TOO_FEW = re.compile(r" needs (\d+) hosts \(tensor_parallel \d+ x pipeline_parallel \d+; .*\), but .* gives (\d+)$")
_NODE_RANGE = re.compile(
    r": (tensor_parallel \d+ x pipeline_parallel \d+ needs \d+ hosts, but the recipe allows at most \d+"
    r"|the recipe needs at least \d+ nodes, but tensor_parallel \d+ x pipeline_parallel \d+ = \d+)$"
)
_UNKNOWN_RUNTIME = re.compile(r"unknown runtime '([^']+)': no installed plugin provides it$")
_HOOK = re.compile(r"^\S+: ((?:pre|post)_exec\[\d+\]): exited with status (\d+)$")
_MISSING_PROGRAM = re.compile(r"(?:^|: )(\S+): (?:command not found|No such file or directory)$")


def _input_reason(error: ErrorReport) -> tuple[str, str] | None:
    line = error.line
    if (m := _MOD_MISSING.search(line)) and _MOD_HINT.search(error.hint):
        return "mods-not-added", m.group(1)
    if (m := _TOO_FEW.search(line)) and int(m.group(1)) > int(m.group(2)):
        return "too-few-hosts", f"needs {m.group(1)} hosts, the cluster has {m.group(2)}"
    if m := _NODE_RANGE.search(line):
        return "node-range", m.group(1)
    if m := _UNKNOWN_RUNTIME.search(line):
        return "unknown-runtime", m.group(1)
    return None


def _hook_reason(error: ErrorReport, hooks: Mapping[str, str]) -> tuple[str, str] | None:
    m = _HOOK.search(error.line)
    if m is None:
        return None
    label, status = m.group(1), int(m.group(2))
    missing = [p.group(1) for d in error.detail if (p := _MISSING_PROGRAM.search(d.strip()))]
    if status == EXIT_COMMAND_NOT_FOUND and missing:
        return "hook-needs-real-engine", f"{label}: {missing[-1]}: not in the stand-in image"
    model_paths = re.findall(re.escape(HF_HUB_IN_CONTAINER) + r"[^/\s'\"]+", hooks.get(label, ""))
    if model_paths:
        return "hook-needs-real-engine", f"{label} reads {model_paths[0]}/… (no weights on the test hosts)"
    return None


def expected_reason(
    exit_code: int, error: ErrorReport, hooks: Mapping[str, str] | None = None, defect: KnownDefect | None = None
) -> tuple[str, str] | None:
    """(reason code, what exactly) when the failure is one of REASONS, else None."""
    if exit_code == EXIT_INPUT:
        return _input_reason(error)
    if exit_code != EXIT_WORKLOAD:
        return None
    if defect is not None and any(defect.expect in text for text in (error.line, *error.detail)):
        return "recipe-defect", defect.expect
    return _hook_reason(error, hooks or {})


def _ready(stdout: str) -> str | None:
    """The endpoint when stdout is run --json output of a ready job, else None."""
    try:
        data = json.loads(stdout)
    except json.JSONDecodeError:
        return None
    if isinstance(data, dict) and data.get("ready") is True and data.get("job"):
        return str(data.get("endpoint") or data["job"])
    return None


def _after_success(record: RunRecord, extra: tuple[str, ...]) -> Verdict:
    endpoint = _ready(record.stdout)
    if endpoint is None:
        return Verdict("unexpected", None, "exit 0 but the output is not a ready job", extra)
    if record.stop_error:
        return Verdict("unexpected", None, f"ready, but stopping it failed: {record.stop_error}", extra)
    if extra:
        return Verdict("unexpected", None, "ready and stopped, but containers were left behind", extra)
    if record.known_defect is not None:
        return Verdict("unexpected", None, "ready, but listed in KNOWN_DEFECTS: drop the entry", (endpoint,))
    return Verdict("ready", None, endpoint)


def _after_failure(record: RunRecord, error: ErrorReport | None, extra: tuple[str, ...]) -> Verdict:
    if error is None:
        tail = (record.stderr.strip().splitlines() or ["no output"])[-1]
        return Verdict("unexpected", None, f"exit {record.exit_code} without an error line (last: {tail})", extra)
    details = (*error.detail[-5:], *((f"hint: {error.hint}",) if error.hint else ()), *extra)
    found = expected_reason(record.exit_code or 0, error, dict(record.hooks), record.known_defect)
    if found is None or extra:
        return Verdict("unexpected", None, f"exit {record.exit_code}: {error.line}", details)
    return Verdict("expected", found[0], error.line, details, what=found[1])


_NOT_PROGRESS = ("error: ", "hint: ", "  | ")


def classify(record: RunRecord) -> Verdict:
    """Ready (and stopped, nothing left), expected (one of REASONS, nothing left) or unexpected."""
    error = parse_error(record.stderr)
    extra = tuple(f"left behind: {c}" for c in record.leftovers)
    if record.timed_out:
        lines = record.stderr.splitlines()
        cut = next((i for i, ln in enumerate(lines) if "interrupted" in ln), len(lines))  # sparkrun's cleanup
        progress = [ln for ln in lines[:cut] if ln.strip() and not ln.startswith(_NOT_PROGRESS)]
        last = progress[-1] if progress else "no progress line"
        ended = f"; then: {error.line}" if error else ""
        line = f"timed out: still running at the {record.cap_s:g} s cap (last: {last}{ended})"
        return Verdict("unexpected", None, line, extra)
    if record.exit_code == 0:
        return _after_success(record, extra)
    return _after_failure(record, error, extra)
