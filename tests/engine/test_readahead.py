"""read_ahead: a source read on its own thread, a few batches ahead of the package writer."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from datapolicy.engine.readahead import DEPTH, read_ahead


def test_yields_everything_in_order():
    assert list(read_ahead(iter(range(1000)), "numbers")) == list(range(1000))


def test_the_source_runs_and_is_closed_on_another_thread():
    """The source generator is resumed and closed on the reader thread only (a generator must
    not be driven by two threads), and its cleanup has run when the consumer finishes."""
    threads: set[str] = set()
    closed: list[str] = []

    def source() -> Iterator[int]:
        try:
            for n in range(5):
                threads.add(threading.current_thread().name)
                yield n
        finally:
            closed.append(threading.current_thread().name)

    assert list(read_ahead(source(), "numbers")) == [0, 1, 2, 3, 4]
    assert threads == {"read-ahead numbers"}
    assert closed == ["read-ahead numbers"]


def test_a_source_error_reaches_the_consumer_after_the_items_before_it():
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise LookupError("the database went away")

    items = read_ahead(source(), "failing")
    assert [next(items), next(items)] == [1, 2]
    with pytest.raises(LookupError, match="went away"):
        next(items)


def test_stopping_early_closes_the_source_and_joins_the_reader():
    """A consumer that stops (an export cancelled mid-table) closes the source, which has read
    at most DEPTH + 2 items, and leaves no reader thread behind."""
    read: list[int] = []
    closed = threading.Event()

    def source() -> Iterator[int]:
        try:
            for n in range(10_000):
                read.append(n)
                yield n
        finally:
            closed.set()

    items = read_ahead(source(), "endless")
    assert next(items) == 0
    items.close()
    assert closed.is_set()
    assert len(read) <= DEPTH + 2
    assert not any(t.name == "read-ahead endless" for t in threading.enumerate())
