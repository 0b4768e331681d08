"""What `--wait` shows while an operation runs (cli/progress.py), on an injected clock: the
rate and time left estimated from the polled percentages, and when a line is printed when
stdout is not a terminal."""

from __future__ import annotations

import io

from rich.console import Console

from datapolicy.cli.progress import LINE_MAX_SECONDS, ProgressView


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def view(clock: Clock, *, show: bool = True, terminal: bool = False) -> tuple[ProgressView, list]:
    lines: list[str] = []
    output = Console(file=io.StringIO(), force_terminal=terminal)
    return ProgressView(output, show=show, clock=clock, echo=lines.append), lines


def test_the_rate_and_time_left_come_from_the_percentages_polled_over_time():
    """20% gained in the 4 s after the first rise: 5%/s, so the 78% left take 16 s (rounded up)."""
    clock = Clock()
    progress, lines = view(clock)
    with progress:
        for percent in (0.0, 2.0, 12.0, 22.0):
            progress.update("running", percent)
            clock.now += 2
    assert lines[-1] == "running 22.0% (5.0%/s, ETA 0:00:16)"


def test_a_line_is_printed_for_each_status_and_each_whole_percent_at_most_once_a_second():
    clock = Clock()
    progress, lines = view(clock)
    with progress:
        progress.update("notStarted", 0.0)
        progress.update("running", 0.0)  # another status: printed at once
        clock.now += 0.5
        progress.update("running", 10.0)  # moved, but within a second of the last line
        clock.now += 0.5
        progress.update("running", 10.4)  # a second on: printed
        clock.now += 1
        progress.update("running", 10.9)  # the same whole percentage: not printed
        progress.update("complete", 100.0)
    assert [line.split(" (")[0] for line in lines] == [
        "notStarted 0.0%",
        "running 0.0%",
        "running 10.4%",
        "complete 100.0%",
    ]


def test_a_stalled_operation_still_gets_a_line_now_and_then():
    """A log shows the wait is alive: a line every LINE_MAX_SECONDS even if nothing moved."""
    clock = Clock()
    progress, lines = view(clock)
    with progress:
        progress.update("running", 5.0)
        clock.now += LINE_MAX_SECONDS - 1
        progress.update("running", 5.0)
        clock.now += 1
        progress.update("running", 5.0)
    assert lines == ["running 5.0%", "running 5.0%"]


def test_only_a_running_line_carries_the_rate():
    """A failure after some progress says where it stopped, not a time left."""
    clock = Clock()
    progress, lines = view(clock)
    with progress:
        for percent in (1.0, 20.0, 40.0):
            progress.update("running", percent)
            clock.now += 2
        progress.update("failed", 40.0)
    assert lines[-2].startswith("running 40.0% (")
    assert lines[-1] == "failed 40.0%"


def test_nothing_is_printed_with_json_or_on_a_terminal_where_the_bar_shows_it():
    for show, terminal in ((False, False), (False, True), (True, True)):
        clock = Clock()
        progress, lines = view(clock, show=show, terminal=terminal)
        with progress:
            progress.update("running", 50.0)
            clock.now += 2
            progress.update("complete", 100.0)
        assert lines == []
