"""The only module that prints. Data (tables, JSON, plans) goes to stdout; progress, warnings and errors to stderr,
so `--json` output stays machine-readable. The core reports through events (`sparkrun.core.events`); `render` turns
them into lines: a live status line on a terminal, plain lines on a pipe.

rich is imported lazily (tables, live progress) because `sparkrun --help` must not pay for it.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from sparkrun.errors import SparkrunError

if TYPE_CHECKING:
    from sparkrun.core.events import Event

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def one_line(text: str) -> str:
    """A message as one line: control characters (a newline, a terminal escape from some value) shown escaped."""
    return _CONTROL.sub(lambda m: repr(m.group(0))[1:-1], text)


READY_PHASES = {"port": "the port to open", "models": "GET /v1/models", "inference": "a streamed chat completion"}


class Console:
    def __init__(self, verbosity: int = 0, quiet: bool = False) -> None:
        self.verbosity = verbosity
        self.quiet = quiet
        self.json_events = False  # --json commands: every event as one JSON line on stderr
        self._lock = threading.Lock()
        self._progress: ProgressLine | None = None
        self._transfers: Any = None  # transfer_view.TransferView, once a copy reports progress

    # ---- messages (stderr) -------------------------------------------------------------------------
    @staticmethod
    def _err(line: str, stream: IO[str] | None = None) -> None:
        out = stream or sys.stderr
        out.write(line + "\n")
        out.flush()

    def info(self, message: str) -> None:
        """A progress or status line; hidden by -q."""
        if not self.quiet:
            self._err(message)

    def detail(self, message: str, level: int = 1) -> None:
        """Shown only with -v (level 1) or -vv (level 2)."""
        if self.verbosity >= level:
            self._err(message)

    def warn(self, message: str) -> None:
        if not self.quiet:
            self._err(f"warning: {message}")

    def error(self, exc: SparkrunError) -> None:
        self._err(f"error: {one_line(exc.message)}")
        if exc.detail:
            for line in exc.detail.rstrip("\n").splitlines():
                self._err(f"  | {line}")
        if exc.hint:
            self._err(f"hint: {one_line(exc.hint)}")

    # ---- data (stdout) -----------------------------------------------------------------------------
    @staticmethod
    def out(text: str = "") -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    @staticmethod
    def json(obj: Any) -> None:
        sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
        sys.stdout.flush()

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None) -> None:
        cells = [["" if cell is None else str(cell) for cell in row] for row in rows]
        if not sys.stdout.isatty():
            # Plain aligned columns on a pipe: greppable, never folded, and no rich import (~40 ms) to pay.
            widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
            if title:
                self.out(title)
            for line in [list(columns), *cells]:
                self.out("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
            return
        from rich.console import Console as RichConsole  # deferred: rich costs ~40 ms to import
        from rich.table import Table  # deferred: as above

        table = Table(title=title, show_edge=False, header_style="bold", box=None, pad_edge=False)
        for col in columns:
            table.add_column(col, overflow="fold")
        for row in cells:
            table.add_row(*row)
        RichConsole(soft_wrap=False).print(table)

    # ---- events from the core ---------------------------------------------------------------------------
    def render(self, event: Event) -> None:
        """Show one core event (thread-safe: the apply engine reports from several threads)."""
        from sparkrun.core import events as ev  # deferred: only commands that run the core get here

        with self._lock:
            if self.json_events:
                self._err(json.dumps(event.to_json(), default=str))
            elif isinstance(event, ev.TransferProgress | ev.TransferFinished | ev.MemoryEstimate):
                self._distribution(event)
            elif isinstance(event, ev.Note):
                self.info(f"note: {event.message}")
            elif isinstance(event, ev.Warning):
                self.warn(event.message)
            elif isinstance(event, ev.PhaseStarted):
                self._phase(event)
            elif isinstance(event, ev.StepProgress):
                self._step_progress(event)
            elif isinstance(event, ev.StepFinished):
                self._step_finished(event)
            elif isinstance(event, ev.Cleanup):
                self._cleanup(event)

    def _distribution(self, event: Any) -> None:
        from sparkrun.cli.transfer_view import TransferView  # deferred: only commands that copy get here
        from sparkrun.core import events as ev  # deferred: see render

        if isinstance(event, ev.MemoryEstimate):
            self.info(event.text)
            return
        if self._transfers is None:
            self._transfers = TransferView()
        if self.quiet:
            return
        if isinstance(event, ev.TransferProgress):
            self._transfers.progress(event)
        else:
            self._transfers.finished(event)

    def _phase(self, event: Any) -> None:
        if self._transfers is not None and not event.phase.startswith("sync"):
            self._transfers.close()
        live = [s for s in event.steps if not s.noop]
        if not live:
            return
        if event.phase.startswith("start group"):
            self.info("starting " + ", ".join(f"{s.values['CONTAINER']}@{s.host.address}" for s in live))
        elif event.phase == "ready":
            step = live[0]
            where = f"{step.host.address}:{step.values['PORT']}"
            self._progress = ProgressLine(f"waiting for {where}", enabled=not self.quiet)
        elif event.phase in ("lease", "confirm"):  # the launch lease: routine, shown with -v
            for step in live:
                self.detail(step.summary)
        elif event.phase in ("sync: links", "sync: hub"):
            self.detail(live[0].summary if len(live) == 1 else f"{event.phase}: {len(live)} link(s)")
        elif event.phase != "probe":
            self.info(live[0].summary if len(live) == 1 else f"{event.phase}: {len(live)} host(s)")

    def _step_progress(self, event: Any) -> None:
        if event.key == "phase" and self._progress is not None:
            where = f"{event.step.host.address}:{event.step.values['PORT']}"
            self._progress.update(f"waiting for {READY_PHASES.get(event.value, event.value)} on {where}")
        elif event.key == "note":
            self.detail(f"{event.step.host.address}: {event.value}")

    def _step_finished(self, event: Any) -> None:
        if event.step.stream and self._progress is not None:
            self._progress.close()
            self._progress = None
        if event.step.script.startswith("setup_") and event.step.script != "setup_check":
            self._setup_step(event)

    def _setup_step(self, event: Any) -> None:
        """What a setup step changed (or why it had nothing to do), one line each."""
        where = f"{event.step.host.address}: {event.step.phase}"
        if event.result is None:
            self.info(f"{where}: nothing to do: {event.step.noop}")
        elif event.result.ok:
            for line in event.result.output.all("changed") + event.result.output.all("unchanged"):
                self.info(f"{where}: {line}")

    def finish(self) -> None:
        """Close a live status line left open (an interrupted readiness wait)."""
        with self._lock:
            if self._transfers is not None:
                self._transfers.close()
            if self._progress is not None:
                self._progress.close()
                self._progress = None

    def _cleanup(self, event: Any) -> None:
        self.info(f"removing the job's containers from {', '.join(event.hosts)} ({event.reason})")
        for line in event.failed:
            self.warn(f"cleanup failed: {line}")

    # ---- progress ----------------------------------------------------------------------------------
    @contextmanager
    def progress(self, message: str) -> Iterator[ProgressLine]:
        """A single updating status line with elapsed time (a spinner on a TTY, plain lines otherwise)."""
        line = ProgressLine(message, enabled=not self.quiet)
        try:
            yield line
        finally:
            line.close()


class ProgressLine:
    """`message (12.3s)` updated in place on a terminal; on a pipe each update prints once when its text changes."""

    def __init__(self, message: str, *, enabled: bool = True) -> None:
        self.started = time.monotonic()
        self.message = message
        self.enabled = enabled
        self._tty = sys.stderr.isatty()
        self._last = ""
        self._live: Any = None
        if enabled and self._tty:
            from rich.console import Console as RichConsole  # deferred: rich only for a live line on a TTY

            self._live = RichConsole(stderr=True).status(self._text())
            self._live.start()
        elif enabled:
            self._emit()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _text(self) -> str:
        return f"{self.message} ({self.elapsed():.1f}s)"

    def _emit(self) -> None:
        if self.message != self._last:
            self._last = self.message
            sys.stderr.write(self._text() + "\n")
            sys.stderr.flush()

    def update(self, message: str | None = None) -> None:
        if message is not None:
            self.message = message
        if not self.enabled:
            return
        if self._live is not None:
            self._live.update(self._text())
        else:
            self._emit()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
