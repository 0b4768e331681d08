"""How `--wait` shows an operation's progress while it runs (`export`, `erase`).

On a terminal: rich's bar, with the status, the percentage, the table or file being written,
the rates (rows and bytes per second, percent per second) and the time left. Otherwise (a pipe,
a CI log): a line on stderr when the status changes and, while it runs, when the whole
percentage or the part being written moved (at most every `LINE_MIN_SECONDS`) or
`LINE_MAX_SECONDS` passed, such as `running 42.0% shop/orders (1,250 rows/s, 3.1%/s, ETA
0:00:19)`. With `--json` nothing is shown: stdout holds the final operation only.

The rates come from the values polled over the last `RATE_WINDOW_SECONDS`: rows and bytes per
second from the rise of the operation's `progressDetail` (`records`, `bytes`: what was
written, which the service records with the progress), shown while they rise; the percent per
second and the time left are rich's own estimates (`Task.speed`, `Task.time_remaining`) from
the percentages. An operation without a detail (an erasure, an older service) shows only the
latter.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import timedelta
from types import TracebackType
from typing import Any

import click
from rich.console import Console
from rich.filesize import decimal
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

from datapolicy.cli.output import printable

LINE_MIN_SECONDS = 1.0  # a line per change of the whole percentage, at most this often...
LINE_MAX_SECONDS = 30.0  # ...and at least this often while running, moved or not
RATE_WINDOW_SECONDS = 30.0  # the samples the rates are estimated from


class Throughput:
    """Rows and bytes per second from the `progressDetail` values polled over the last
    `RATE_WINDOW_SECONDS`. Counts that fall (a retried export starts again) start the window
    over."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int, int]] = deque()  # (time, records, bytes)

    def add(self, now: float, records: int, nbytes: int) -> None:
        samples = self._samples
        if samples and (records < samples[-1][1] or nbytes < samples[-1][2]):
            samples.clear()
        samples.append((now, records, nbytes))
        while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW_SECONDS:
            samples.popleft()

    def describe(self) -> list[str]:
        """`1,250 rows/s`, `2.1 MB/s`: each rate that rose over the window (none before two
        samples)."""
        if len(self._samples) < 2:
            return []
        then, records_then, bytes_then = self._samples[0]
        now, records, nbytes = self._samples[-1]
        if now <= then:
            return []
        rows = (records - records_then) / (now - then)
        per_second = (nbytes - bytes_then) / (now - then)
        rates = []
        if rows > 0:
            rates.append(f"{rows:,.0f} rows/s" if rows >= 10 else f"{rows:.1f} rows/s")
        if per_second > 0:
            rates.append(f"{decimal(int(per_second))}/s")
        return rates


def rate_and_eta(task: Task) -> str:
    """`1,250 rows/s, 3.1%/s, ETA 0:00:19`, or what is known of it ('' before two samples)."""
    rates: list[str] = list(task.fields.get("rates", []))
    speed = task.speed
    if speed:
        rates.append(f"{speed:.1f}%/s")
        remaining = task.time_remaining
        if remaining is not None:
            rates.append(f"ETA {timedelta(seconds=int(remaining))}")
    return ", ".join(rates)


def describe(task: Task) -> str:
    """The non-TTY line: `running 42.0% shop/orders (1,250 rows/s, 3.1%/s, ETA 0:00:19)`."""
    running = task.description == "running"
    line = f"{task.description} {task.completed}%"
    part = task.fields.get("part") if running else None
    if part:
        line = f"{line} {part}"
    detail = rate_and_eta(task) if running else ""
    return f"{line} ({detail})" if detail else line


class _PartColumn(ProgressColumn):
    """The bar's `shop/orders`: the table or file being written."""

    def render(self, task: Task) -> Text:
        return Text(task.fields.get("part") or "", style="progress.description")


class _RateColumn(ProgressColumn):
    """The bar's `1,250 rows/s, 3.1%/s, ETA 0:00:19`."""

    def render(self, task: Task) -> Text:
        return Text(rate_and_eta(task), style="progress.remaining")


class ProgressView:
    """Shows the polled (status, percentage, detail) of one operation; a context manager, like
    rich's Progress it wraps. `show=False` (--json) shows nothing; `clock` and `echo` are
    injectable for tests."""

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
            _PartColumn(),
            _RateColumn(),
            TimeElapsedColumn(),
            console=output,
            disable=not self._bar,
            get_time=clock,
            speed_estimate_period=RATE_WINDOW_SECONDS,
        )
        self._task = self._progress.add_task("notStarted", total=100, part=None, rates=[])
        self._throughput = Throughput()
        # The status, whole percentage and part last printed.
        self._shown: tuple[str, int, str | None] | None = None
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

    def note(self, line: str) -> None:
        """A line about the operation's state that its progress cannot show (it waits for
        approval): above the bar on a terminal, else on stderr, also under --json."""
        if self._bar:
            self._progress.console.print(line, markup=False, highlight=False)
        else:
            self._echo(line)

    def update(self, status: str, percent: float, detail: Mapping[str, Any] | None = None) -> None:
        """A polled state: the operation's `status`, `progress` and `progressDetail`."""
        now = self._clock()
        part: str | None = None
        if detail is not None:
            part = printable(detail["part"])  # a file's name, as its uploader chose it
            self._throughput.add(now, detail["records"], detail["bytes"])
        self._progress.update(
            self._task,
            completed=percent,
            description=status,
            part=part,
            rates=self._throughput.describe(),
        )
        if not self._lines:
            return
        shown, since = self._shown, now - self._shown_at
        moved = (
            shown is None
            or shown[0] != status
            or ((shown[1] != int(percent) or shown[2] != part) and since >= LINE_MIN_SECONDS)
        )
        if moved or since >= LINE_MAX_SECONDS:
            self._echo(describe(self.task))
            self._shown, self._shown_at = (status, int(percent), part), now
