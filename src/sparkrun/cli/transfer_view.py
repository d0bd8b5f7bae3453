"""How copies and downloads look while they run: one rich progress bar per host and item (bytes, rate, ETA) on a
terminal; on a pipe, plain lines (one per host and item every 5 s at most, and at the end). `--json` renders events
as JSON lines instead (console.py)."""

from __future__ import annotations

import sys
import time
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sparkrun.core.events import TransferFinished, TransferProgress

PLAIN_EVERY_S = 5.0


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    return f"{n:.2f} TB"


def age(epoch: float, now: float | None = None) -> str:
    """`3d ago`, `5h ago`, `just now`; `never` for 0."""
    if epoch <= 0:
        return "never"
    delta = max(0.0, (now or time.time()) - epoch)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if delta >= size:
            return f"{delta / size:.0f}{unit} ago"
    return "just now"


class TransferView:
    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._progress: Any = None
        self._tasks: dict[tuple[str, str], Any] = {}
        self._last: dict[tuple[str, str], tuple[float, int]] = {}
        self._started: dict[tuple[str, str], float] = {}

    def progress(self, event: TransferProgress) -> None:
        key = (event.host, event.item)
        self._started.setdefault(key, time.monotonic())
        if self.tty:
            self._bar(key, event)
        else:
            self._plain(key, event)

    def _bar(self, key: tuple[str, str], event: TransferProgress) -> None:
        if self._progress is None:
            from rich.console import Console as RichConsole  # deferred: rich only for a live display on a TTY
            from rich.progress import (  # deferred: as above
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
            self._progress = Progress(*columns, TimeRemainingColumn(), console=RichConsole(file=self.stream))
            self._progress.start()
        if key not in self._tasks:
            label = f"{event.host}: {event.item}"
            self._tasks[key] = self._progress.add_task(label, total=event.total or None)
        self._progress.update(self._tasks[key], completed=event.done, total=event.total or None)

    def _plain(self, key: tuple[str, str], event: TransferProgress) -> None:
        now = time.monotonic()
        last_time, _last_done = self._last.get(key, (0.0, -1))
        done = event.total and event.done >= event.total
        if now - last_time < PLAIN_EVERY_S and not done:
            return
        if done and _last_done == event.done:
            return
        self._last[key] = (now, event.done)
        rate = event.done / max(now - self._started[key], 1e-3)
        of = f" / {human_bytes(event.total)} ({100 * event.done / event.total:.0f}%)" if event.total else ""
        self._write(f"{event.host}: {event.item}: {human_bytes(event.done)}{of}, {human_bytes(rate)}/s")

    def finished(self, event: TransferFinished) -> None:
        if event.error:
            line = f"{event.host}: {event.item}: FAILED: {event.error}"
        elif event.moved:
            line = f"{event.host}: {event.item}: {human_bytes(event.moved)} in {event.seconds:.1f}s ({event.route})"
        else:
            line = f"{event.host}: {event.item}: nothing to copy ({event.route or 'already there'})"
        self._write(line)

    def _write(self, line: str) -> None:
        if self._progress is not None:
            self._progress.console.print(line, markup=False, highlight=False)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._tasks.clear()
