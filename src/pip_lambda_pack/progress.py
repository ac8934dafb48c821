"""Progress for long steps (downloads, layer builds, uploads): bars on a terminal, plain
lines in CI and pipes, nothing with ``-q``.

The pipeline sees only the small ``Progress`` protocol; which kind it gets is decided once,
at the CLI edge, from the stream and the environment. Rich honours ``NO_COLOR`` itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TextIO

from .units import human_size

Log = Callable[[str], None]
"""Where a step says one line of what it is doing (``-v`` output, notices)."""


class Task(Protocol):
    """One step with a known amount of work."""

    def advance(self, amount: int = 1) -> None: ...

    def finish(self) -> None: ...


class Progress(Protocol):
    """Starts tasks; ``unit`` is ``"B"`` for bytes or ``""`` for a count of things."""

    def task(self, label: str, total: int, unit: str = "") -> Task: ...


class _Silent:
    def advance(self, amount: int = 1) -> None:
        """Nothing to show."""

    def finish(self) -> None:
        """Nothing to show."""


class QuietProgress:
    """Shows nothing (``-q``, and the default for library callers)."""

    def task(self, label: str, total: int, unit: str = "") -> Task:
        return _Silent()


class _LineTask:
    def __init__(self, stream: TextIO, label: str, total: int, unit: str) -> None:
        self._stream, self._label, self._total, self._unit = stream, label, total, unit
        self._done = 0
        self._start = time.monotonic()

    def advance(self, amount: int = 1) -> None:
        self._done += amount

    def finish(self) -> None:
        seconds = time.monotonic() - self._start
        amount = human_size(self._done) if self._unit == "B" else str(self._done)
        self._stream.write(f"{self._label}: {amount} done in {seconds:.1f} s\n")
        self._stream.flush()


class LineProgress:
    """One line when a task ends: for CI logs and pipes, where bars turn into noise."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def task(self, label: str, total: int, unit: str = "") -> Task:
        return _LineTask(self._stream, label, total, unit)


class _BarTask:
    def __init__(self, progress: Any, task_id: Any) -> None:
        self._progress, self._id = progress, task_id

    def advance(self, amount: int = 1) -> None:
        self._progress.advance(self._id, amount)

    def finish(self) -> None:
        self._progress.stop_task(self._id)
        self._progress.refresh()
        if self._progress.finished:
            self._progress.stop()  # the finished bars stay on screen, drawn once:
            for task in list(self._progress.tasks):  # the next task's bar must not redraw them
                self._progress.remove_task(task.id)


class BarProgress:
    """Rich progress bars on an interactive terminal."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self._progress = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[amount]}"),
            TimeElapsedColumn(),
            console=Console(file=stream),
            transient=False,
        )

    def task(self, label: str, total: int, unit: str = "") -> Task:
        amount = human_size(total) if unit == "B" else f"{total}"
        task_id = self._progress.add_task(label, total=total or 1, amount=amount)
        self._progress.start()
        return _BarTask(self._progress, task_id)


def make_progress(
    *, quiet: bool, stream: TextIO, environ: Mapping[str, str] = os.environ
) -> Progress:
    """Bars on a terminal, lines in CI or a pipe, nothing when quiet."""
    if quiet:
        return QuietProgress()
    interactive = stream.isatty() and not environ.get("CI") and environ.get("TERM") != "dumb"
    if interactive:
        try:
            return BarProgress(stream)
        except ImportError:  # rich missing: lines still say what happened
            pass
    return LineProgress(stream)
