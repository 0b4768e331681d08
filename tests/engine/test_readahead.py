"""ReadAhead: a record stream read on its own thread into a spool, ahead of the package
writer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from datapolicy.engine import readahead
from datapolicy.engine.readahead import ReadAhead
from datapolicy.engine.sources.jsonlines import JsonLines, encode_rows


def batches(count: int, rows: int = 3) -> list[JsonLines]:
    return [encode_rows({"batch": b, "row": r} for r in range(rows)) for b in range(count)]


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_yields_every_batch_in_order_with_its_count():
    expected = batches(500)
    reading = ReadAhead(iter(expected), "numbers")
    try:
        assert list(reading) == expected
    finally:
        reading.close()


def test_the_source_runs_and_is_closed_on_the_reader_thread():
    """The source generator is resumed and closed on the reader thread only (a generator must
    not be driven by two threads), and its cleanup has run once the reading is closed."""
    threads: set[str] = set()
    closed: list[str] = []

    def source() -> Iterator[JsonLines]:
        try:
            for batch in batches(5):
                threads.add(threading.current_thread().name)
                yield batch
        finally:
            closed.append(threading.current_thread().name)

    reading = ReadAhead(source(), "numbers")
    assert len(list(reading)) == 5
    reading.close()
    assert threads == {"read-ahead numbers"}
    assert closed == ["read-ahead numbers"]


def test_a_source_error_reaches_the_consumer_after_the_batches_before_it():
    def source() -> Iterator[JsonLines]:
        yield from batches(2)
        raise LookupError("the database went away")

    reading = ReadAhead(source(), "failing")
    items = iter(reading)
    assert [next(items).records, next(items).records] == [3, 3]
    with pytest.raises(LookupError, match="went away"):
        next(items)
    reading.close()


def test_a_table_read_before_its_turn_waits_in_a_bounded_spool(monkeypatch):
    """Nobody reads yet (the writer is busy with the previous table): the reader fills the spool
    up to SPOOL_LIMIT and waits there instead of reading the whole table; once read, all of it
    comes out in order."""
    monkeypatch.setattr(readahead, "SPOOL_LIMIT", 10_000)
    produced: list[int] = []
    expected = batches(1000, rows=10)

    def source() -> Iterator[JsonLines]:
        for index, batch in enumerate(expected):
            produced.append(index)
            yield batch

    reading = ReadAhead(source(), "next table")
    try:
        size = len(expected[0].data)
        wait_until(lambda: len(produced) >= 10_000 // size)
        stalled = len(produced)
        time.sleep(0.2)
        assert len(produced) == stalled <= 10_000 // size + 2
        assert list(reading) == expected
    finally:
        reading.close()


def test_closing_early_stops_the_reader_and_closes_the_source():
    """A consumer that stops (an export cancelled mid-table) closes the reading: the source is
    closed and no reader thread is left behind."""
    closed = threading.Event()

    def source() -> Iterator[JsonLines]:
        try:
            while True:
                yield from batches(10)
        finally:
            closed.set()

    reading = ReadAhead(source(), "endless")
    assert next(iter(reading)).records == 3
    reading.close()
    assert closed.is_set()
    assert not any(t.name == "read-ahead endless" for t in threading.enumerate())
