"""Read record streams ahead of the package writer, each on a thread of its own.

An export is two kinds of work: reading (the database building and sending rows, the driver's
per-row loop) and writing (hashing, CRC, deflate, the storage target's I/O, all C code that
releases the GIL). With the reader on its own thread the two overlap on separate cores instead
of taking turns.

The exporter also starts reading the *next* table while it still writes the current one. A
database serves each query with one process, and building JSON makes that process the
bottleneck (docs/benchmarks.md): two queries at once use two. What the next table yields before
its turn waits in a spool: memory up to `SPOOL_MEMORY`, then an anonymous temporary file
(unlinked from the start, so a crash leaves nothing behind), at most `SPOOL_LIMIT` bytes, beyond
which the reader waits. Memory therefore stays flat however large a table is.
"""

from __future__ import annotations

import tempfile
import threading
from collections import deque
from collections.abc import Iterator

from datapolicy.engine.sources.jsonlines import JsonLines

SPOOL_MEMORY = 4 * 1024 * 1024  # spooled bytes kept in memory before the spool moves to disk
SPOOL_LIMIT = 256 * 1024 * 1024  # unread bytes at which the reader waits for the writer


class ReadAhead:
    """The batches of one record stream, read on another thread into a spool.

    `batches` runs, fails and is closed on the reader thread only (a generator must not be
    resumed by two threads). Iterate to get the batches in order; `close()` stops the reader
    (it closes `batches`, releasing its connection), waits for it and drops the spool, so
    nothing outlives the export."""

    def __init__(self, batches: Iterator[JsonLines], name: str):
        self._batches = batches
        self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115
        self._sizes: deque[tuple[int, int]] = deque()  # (bytes, records) of unread batches
        self._read_at = 0
        self._write_at = 0
        self._done = False
        self._error: BaseException | None = None
        self._stop = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, name=f"read-ahead {name}", daemon=True)
        self._thread.start()

    def __iter__(self) -> Iterator[JsonLines]:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._sizes or self._done)
                if not self._sizes:
                    if self._error is not None:
                        raise self._error
                    return
                size, records = self._sizes.popleft()
                self._spool.seek(self._read_at)
                data = self._spool.read(size)
                self._read_at += size
                if self._read_at == self._write_at:  # all caught up: start the spool afresh
                    self._spool.seek(0)
                    self._spool.truncate()
                    self._read_at = self._write_at = 0
                self._changed.notify_all()
            yield JsonLines(data, records)

    def close(self) -> None:
        with self._changed:
            self._stop = True
            self._changed.notify_all()
        self._thread.join()
        self._spool.close()

    def _read(self) -> None:
        try:
            for batch in self._batches:
                with self._changed:
                    self._changed.wait_for(
                        lambda: self._stop or self._write_at - self._read_at < SPOOL_LIMIT
                    )
                    if self._stop:
                        return
                    self._spool.seek(self._write_at)
                    self._spool.write(batch.data)
                    self._write_at += len(batch.data)
                    self._sizes.append((len(batch.data), batch.records))
                    self._changed.notify_all()
        except BaseException as exc:  # handed to the consumer, which raises it
            self._error = exc
        finally:
            close = getattr(self._batches, "close", None)
            if close is not None:
                close()
            with self._changed:
                self._done = True
                self._changed.notify_all()
