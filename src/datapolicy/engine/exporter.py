"""Export one person's data: read every source, write the package, report progress.

This is the whole export, minus the queue: it knows nothing of leases, HTTP or where the stream
goes. Progress is measured in *work units* against the sources' estimate: a record counts as
`RECORD_WORK` bytes (roughly a record's JSON size), a file byte as one, so that a person with a
few huge files and one with many small rows both see progress that tracks real work. Beside the
share, `Progress` keeps what was written (`detail`: the current table or file, the records and
bytes so far), which the worker records with it as the operation's `progressDetail`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing
from datetime import datetime
from typing import IO, Any

from datapolicy.engine.directory import User
from datapolicy.engine.package import PackageWriter, SourceSummary
from datapolicy.engine.readahead import ReadAhead
from datapolicy.engine.report import ReportLabels
from datapolicy.engine.sources.base import (
    Estimate,
    FileItem,
    Part,
    RecordStream,
    Source,
    SourceError,
)
from datapolicy.model import Operation, ProgressDetail, format_datetime

RECORD_WORK = 200  # work units per record
# A paced export counts what it wrote in slices of at most this share of the estimate, the
# pacer waiting after each: a read batch or file chunk can be most of a small person's data.
PACED_SLICE = 0.01
MAX_RUNNING_PROGRESS = 99.0  # 100 is reported only once the package is published


class Cancelled(Exception):
    """The export must stop: its deletion was requested, its lease was lost, or the worker is
    shutting down. Raised from inside the export loop between batches and chunks."""


class Progress:
    """Thread-safe work counter; the worker's heartbeat reads `snapshot()` and sets `stop`.

    `advance` counts records and file bytes written, both as work and as what was written (the
    detail, once `begin` named a part); `advance_steps` counts work that writes nothing (an
    erasure's tables, whose operations carry no detail)."""

    def __init__(self, on_first_write: Callable[[], None] | None = None) -> None:
        self._lock = threading.Lock()
        self.total = 0
        self.done = 0
        self._part: str | None = None  # the table or file being written
        self._records = 0
        self._bytes = 0
        self.stop = threading.Event()
        self._on_first_write = on_first_write  # called once, when the first data is written
        # Called with the share of the work done (0..1) after each advance; may block: the
        # control's pacing of a slowed export (engine/control.py).
        self.pacer: Callable[[float], None] | None = None

    def start(self, estimate: Estimate) -> None:
        with self._lock:
            self.total = estimate.records * RECORD_WORK + estimate.bytes

    def begin(self, part: str) -> None:
        """The export starts writing `part` (`source/table`, `source/path`)."""
        with self._lock:
            self._part = part

    def advance_steps(self, steps: int) -> None:
        """`steps` units of the estimate's records done, with nothing written."""
        self._advance(steps, 0, 0)

    def advance(self, records: int = 0, nbytes: int = 0) -> None:
        """`records` records and `nbytes` file bytes written (both 0: a cancellation point)."""
        self._advance(records, records, nbytes)

    def _advance(self, steps: int, records: int, nbytes: int) -> None:
        if self.stop.is_set():
            raise Cancelled
        pacer = self.pacer
        if pacer is None or self.total <= 0:  # no estimate, no share to pace: no slices
            self._count(steps * RECORD_WORK + nbytes, records, nbytes)
            return
        # Paced (slow motion): the work is counted a slice at a time, each followed by the
        # pacer's wait, so the progress shown rises with the time the export is made to take
        # rather than leaping a whole batch ahead of it and standing there.
        for piece in self._slices(steps * RECORD_WORK, records, nbytes):
            if self.stop.is_set():
                raise Cancelled
            share = self._count(*piece)
            if share:
                pacer(share)

    def _count(self, work: int, records: int, nbytes: int) -> float:
        """Count `work` units done, of which `records` records and `nbytes` file bytes were
        written; returns the share of the estimate done (0 without one)."""
        with self._lock:
            self.done += work
            self._records += records
            self._bytes += nbytes
            first_write = self._on_first_write if records or nbytes else None
            if first_write is not None:
                self._on_first_write = None
            share = min(1.0, self.done / self.total) if self.total > 0 else 0.0
        if first_write is not None:
            first_write()
        return share

    def _slices(self, work: int, records: int, nbytes: int) -> Iterator[tuple[int, int, int]]:
        """`(work, records, bytes)` pieces of `work` record units, then of `nbytes`, of at most
        PACED_SLICE of the estimate each, adding up to the arguments. A record is counted as
        written with the first piece of its work (it was written before it is counted)."""
        unit = max(1, math.ceil(self.total * PACED_SLICE))
        counted = told = 0
        while counted < work:
            taken = min(unit, work - counted)
            counted += taken
            written = min(records, -(-counted // RECORD_WORK))  # records begun, rounded up
            yield taken, written - told, 0
            told = written
        if told < records:  # more records than steps: never from advance(), kept whole
            yield 0, records - told, 0
        while nbytes > 0:
            taken = min(unit, nbytes)
            yield taken, 0, taken
            nbytes -= taken

    @property
    def detail(self) -> ProgressDetail | None:
        return self.snapshot()[1]

    def snapshot(self) -> tuple[float, ProgressDetail | None]:
        """The percentage done (at most MAX_RUNNING_PROGRESS) and what was written by then
        (None before the first part began), read together."""
        with self._lock:
            percent = (
                0.0
                if self.total <= 0
                else round(min(MAX_RUNNING_PROGRESS, 100.0 * self.done / self.total), 1)
            )
            if self._part is None:
                return percent, None
            return percent, ProgressDetail(self._part, self._records, self._bytes)


def export(
    operation: Operation,
    user: User,
    sources: Sequence[Source],
    stream: IO[bytes],
    progress: Progress,
    clock: Callable[[], datetime],
    labels: ReportLabels | None = None,
) -> dict[str, Any]:
    """Write the user's package to `stream`; returns its manifest. `labels`: what the
    configuration says of the data, for the person's report (none: the report says so)."""
    started = clock()
    estimate = sum((source.estimate(user.id) for source in sources), Estimate())
    progress.start(estimate)
    writer = PackageWriter(
        stream,
        {
            "operationId": operation.id,
            "user": user.as_json(),
            "submittedDateTime": format_datetime(operation.submitted_at),
            "startedDateTime": format_datetime(started),
        },
        labels=labels or ReportLabels(),
        modified=started,
    )
    summaries = {source.name: writer.source(source.name, source.kind) for source in sources}
    parts = _parts(sources, user.id)
    current = following = None
    try:
        current = _started(parts)
        while current is not None:
            # The next part starts reading now, while this one is written (readahead.py).
            following = _started(parts)
            source, part, reading = current
            progress.advance()  # a cancellation point even between empty parts
            progress.begin(f"{source.name}/{_part_name(part)}")
            if reading is not None:
                assert isinstance(part, RecordStream)
                summary = summaries[source.name]
                with closing(writer.add_records(summary, part.name, reading)) as written:
                    for count in written:
                        progress.advance(records=count)
                reading.close()
            elif isinstance(part, FileItem):
                _copy_file(writer, summaries[source.name], source, part, progress)
            current, following = following, None
    except BaseException:
        for unfinished in (current, following):
            if unfinished is not None and unfinished[2] is not None:
                unfinished[2].close()
        parts.close()
        writer.abandon()
        raise
    return writer.close({"createdDateTime": format_datetime(clock())})


def _part_name(part: Part) -> str:
    return part.name if isinstance(part, RecordStream) else part.relative_path


def _parts(sources: Sequence[Source], user_id: str) -> Generator[tuple[Source, Part], None, None]:
    for source in sources:
        for part in source.parts(user_id):
            yield source, part


def _started(
    parts: Iterator[tuple[Source, Part]],
) -> tuple[Source, Part, ReadAhead | None] | None:
    """The next part, its records already being read if it is a record stream."""
    item = next(parts, None)
    if item is None:
        return None
    source, part = item
    if isinstance(part, RecordStream):
        return source, part, ReadAhead(part.batches, f"{source.name}/{part.name}")
    return source, part, None


def _copy_file(
    writer: PackageWriter,
    summary: SourceSummary,
    source: Source,
    part: FileItem,
    progress: Progress,
) -> None:
    try:
        with (
            part.open() as content,
            closing(writer.add_file(summary, part.relative_path, content)) as chunks,
        ):
            for size in chunks:
                progress.advance(nbytes=size)
    except OSError as exc:  # reading the source file failed (writes raise StorageError)
        raise SourceError(
            f"source '{source.name}': cannot read {part.relative_path}: {exc.strerror}"
        ) from None
