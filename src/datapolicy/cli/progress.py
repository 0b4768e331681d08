"""How `--wait` shows an operation's progress while it runs (`export`, `erase`).

On a terminal: rich's bar, with the status, the percentage, the rate and the time left. Otherwise
(a pipe, a CI log): a line on stderr when the status changes and, while it runs, when the whole
percentage moved (at most every `LINE_MIN_SECONDS`) or `LINE_MAX_SECONDS` passed, such as
`running 42.0% (3.1%/s, ETA 0:00:19)`. With `--json` nothing is shown: stdout holds the final
operation only.

The rate and the time left are rich's own estimates (`Task.speed`, `Task.time_remaining`)
from the percentages polled over the last `RATE_WINDOW_SECONDS`: the operation reports its
progress only, so the rate is in percent per second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from types import TracebackType

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

LINE_MIN_SECONDS = 1.0  # a line per change of the whole percentage, at most this often...
LINE_MAX_SECONDS = 30.0  # ...and at least this often while running, moved or not
RATE_WINDOW_SECONDS = 30.0  # the samples the rate is estimated from


def rate_and_eta(task: Task) -> str:
    """`3.1%/s, ETA 0:00:19`, or what is known of it ('' before two samples)."""
    speed = task.speed
    if not speed:
        return ""
    remaining = task.time_remaining
    eta = "" if remaining is None else f", ETA {timedelta(seconds=int(remaining))}"
    return f"{speed:.1f}%/s{eta}"


def describe(task: Task) -> str:
    """The non-TTY line: `running 42.0% (3.1%/s, ETA 0:00:19)`."""
    detail = rate_and_eta(task) if task.description == "running" else ""
    line = f"{task.description} {task.completed}%"
    return f"{line} ({detail})" if detail else line


class _RateColumn(ProgressColumn):
    """The bar's `3.1%/s, ETA 0:00:19`."""

    def render(self, task: Task) -> Text:
        return Text(rate_and_eta(task), style="progress.remaining")


class ProgressView:
    """Shows the polled (status, percentage) of one operation; a context manager, like rich's
    Progress it wraps. `show=False` (--json) shows nothing; `clock` and `echo` are injectable
    for tests."""

    def __init__(
        self,
        output: Console,
        *,
        show: bool,
        clock: Callable[[], float] = time.monotonic,
        echo: Callable[[str], None] | None = None,
    ):
        self._bar = show and output.is_terminal
        self._lines = show and not self._bar
        self._clock = clock
        self._echo = echo or (lambda line: click.echo(line, err=True))
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            _RateColumn(),
            TimeElapsedColumn(),
            console=output,
            disable=not self._bar,
            get_time=clock,
            speed_estimate_period=RATE_WINDOW_SECONDS,
        )
        self._task = self._progress.add_task("notStarted", total=100)
        self._shown: tuple[str, int] | None = None  # the status and whole percentage last printed
        self._shown_at = 0.0

    def __enter__(self) -> ProgressView:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Take the bar down (before printing an outcome below it); safe to call twice."""
        self._progress.stop()

    @property
    def task(self) -> Task:
        return self._progress.tasks[0]

    def update(self, status: str, percent: float) -> None:
        self._progress.update(self._task, completed=percent, description=status)
        if not self._lines:
            return
        now = self._clock()
        shown, since = self._shown, now - self._shown_at
        moved = (
            shown is None
            or shown[0] != status
            or (shown[1] != int(percent) and since >= LINE_MIN_SECONDS)
        )
        if moved or since >= LINE_MAX_SECONDS:
            self._echo(describe(self.task))
            self._shown, self._shown_at = (status, int(percent)), now
