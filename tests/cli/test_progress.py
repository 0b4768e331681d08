"""What `--wait` shows while an operation runs (cli/progress.py), on an injected clock: the
part being written, the rows and bytes per second from the polled `progressDetail`, the rate and
time left estimated from the polled percentages, and when a line is printed when stdout is not
a terminal."""

from __future__ import annotations

import io

from rich.console import Console

from datapolicy.cli.progress import (
    LINE_MAX_SECONDS,
    RATE_WINDOW_SECONDS,
    ProgressView,
    Throughput,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def view(
    clock: Clock, *, show: bool = True, terminal: bool = False, output: io.StringIO | None = None
) -> tuple[ProgressView, list]:
    lines: list[str] = []
    console = Console(file=output or io.StringIO(), force_terminal=terminal, width=120)
    return ProgressView(console, show=show, clock=clock, echo=lines.append), lines


def detail(part: str, records: int, nbytes: int = 0) -> dict:
    return {"part": part, "records": records, "bytes": nbytes}


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


def test_lines_name_the_part_and_the_rows_per_second_written():
    """2,500 records written every 2 s: 1,250 rows/s, beside the percentage's own rate."""
    clock = Clock()
    progress, lines = view(clock)
    with progress:
        for step in range(4):
            progress.update("running", 10.0 * step, detail("shop/orders", 2_500 * step))
            clock.now += 2
    assert lines[0] == "running 0.0% shop/orders"
    assert lines[-1] == "running 30.0% shop/orders (1,250 rows/s, 5.0%/s, ETA 0:00:14)"


def test_a_file_shows_bytes_per_second_and_a_new_part_gets_a_line():
    """Rows stop rising once the export is in the files: only the bytes' rate is shown (over the
    window, which still holds the table's rows), and the change of part is printed although the
    whole percentage did not move."""
    clock = Clock()
    progress, lines = view(clock)
    with progress:
        progress.update("running", 50.0, detail("shop/orders", 1_000))
        clock.now += 2
        progress.update("running", 50.2, detail("files/a.pdf", 1_000, 4_000_000))
        clock.now += 2
        progress.update("running", 50.4, detail("files/a.pdf", 1_000, 8_000_000))
    assert lines[1].startswith("running 50.2% files/a.pdf (2.0 MB/s, ")
    assert "rows/s" not in lines[1]
    assert len(lines) == 2  # 50.4: the same whole percentage, the same part


def test_rows_per_second_start_over_when_the_counts_fall():
    """A retried export writes from the start again: its rate is not the fall's."""
    clock = Clock()
    throughput = Throughput()
    throughput.add(clock.now, 10_000, 0)
    clock.now += 1
    throughput.add(clock.now, 100, 0)
    assert throughput.describe() == []
    clock.now += 2
    throughput.add(clock.now, 300, 0)
    assert throughput.describe() == ["100 rows/s"]


def test_the_rate_is_that_of_the_last_window_only():
    """Fast at first, then 5 rows/s for longer than the window: the window's rate is shown."""
    throughput = Throughput()
    throughput.add(0.0, 0, 0)
    throughput.add(1.0, 100_000, 0)
    for second in range(2, 2 + int(RATE_WINDOW_SECONDS) + 2):
        throughput.add(float(second), 100_000 + 5 * (second - 1), 0)
    assert throughput.describe() == ["5.0 rows/s"]


def test_the_terminal_bar_shows_the_part_and_the_rows_per_second():
    clock = Clock()
    output = io.StringIO()
    progress, lines = view(clock, terminal=True, output=output)
    with progress:
        for step in range(3):
            progress.update("running", 10.0 * step, detail("shop/orders", 2_500 * step))
            clock.now += 2
    assert lines == []
    assert "shop/orders" in output.getvalue()
    assert "1,250 rows/s, 5.0%/s, ETA 0:00:16" in output.getvalue()


def test_a_file_name_is_shown_with_its_control_characters_escaped():
    """The part names a file of the person's, whose name anyone who could upload it chose: its
    escape sequences reach neither the lines nor the bar (cli/output.py `printable`)."""
    clock = Clock()
    output = io.StringIO()
    progress, lines = view(clock)
    bar, _ = view(clock, terminal=True, output=output)
    for shown in (progress, bar):
        with shown:
            shown.update("running", 10.0, detail("uploads/a\x1b[2J\x1b]52;c;eA==\x07.txt", 1))
    assert lines == ["running 10.0% uploads/a\\x1b[2J\\x1b]52;c;eA==\\x07.txt"]
    assert "a\\x1b[2J" in output.getvalue()
    assert "\x1b[2J" not in output.getvalue()
