"""Read a source ahead of the package writer, on a thread of its own.

An export is two kinds of work: reading (the database driver's per-row loop, waiting on the
network) and writing (hashing, CRC, deflate, the storage target's I/O). The writing side runs in
C code that releases the GIL, so with the reader on its own thread the two overlap on separate
cores instead of taking turns (docs/benchmarks.md has the figures). The queue between them is
short, so memory stays a few batches however large the source is.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

DEPTH = 2  # batches read ahead of the writer
_POLL_S = 0.1  # how often a blocked reader looks for the writer's stop


class _End:
    """Put after the last item, carrying the reader's exception if it failed."""

    def __init__(self, error: BaseException | None = None):
        self.error = error


def read_ahead(items: Iterator[T], name: str) -> Iterator[T]:
    """Yield what `items` yields, reading it on another thread up to `DEPTH` items ahead.

    `items` runs, fails and is closed on the reader thread only: a generator must not be
    resumed by two threads. When the consumer stops early (cancelled, or the write failed), the
    reader is told to stop, closes `items` (which releases its connection) and is joined before
    this generator returns, so nothing outlives the export."""
    handoff: queue.Queue[T | _End] = queue.Queue(maxsize=DEPTH)
    stop = threading.Event()

    def offer(item: T | _End) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            offer(_End(exc))
        else:
            offer(_End())
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    reader = threading.Thread(target=read, name=f"read-ahead {name}", daemon=True)
    reader.start()
    try:
        while True:
            item = handoff.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        reader.join()
