"""The export package: one ZIP per operation, checkable against its own manifest.

Layout::

    manifest.json              format version, operation, user, times, per-source counts,
                               and size + SHA-256 of every other entry
    index.html                 the person's report: their data as a page they can read
                               (report.py; its rows sampled as the records are written)
    records/<source>/<name>.jsonl   one JSON object per line, per table or query
    files/<source>/<path>      files copied whole (stored, not deflated, when their start
                               does not compress: photos, video, archives)
    receipt.json, receipt.html an erasure's receipt, only in the package of a complete erasure
                               (engine/erasure/receipt.py; added by `add_document`)

Entry names are safe and unique whatever the sources' names (entrynames.py); a copied file's
manifest entry keeps its original path in the source as `sourcePath`.

The writer streams: it never holds a table or a file in memory, and it writes to any binary
stream, seekable or not (zipfile then uses data descriptors), so a storage target can upload the
package while it is being made.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import zipfile
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import orjson
from isal import isal_zlib

from datapolicy.engine.entrynames import EntryNames
from datapolicy.engine.report import ReportLabels, TableSample, render_report
from datapolicy.engine.sources.jsonlines import JsonLines

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
INDEX = "index.html"
DOCUMENTS = ("receipt.json", "receipt.html")  # top-level entries beside the index (add_document)
COPY_CHUNK = 1024 * 1024
SAMPLE_SLICES = 16  # a file's first chunk is sampled in this many slices ...
SAMPLE_SLICE = 4096  # ... of this many bytes, to decide whether to deflate it
SAMPLE_MIN = 1024  # files smaller than this are always deflated
STORE_ABOVE = 0.95  # stored when the sample deflates to more than this fraction of its size
DEFLATE_LEVEL = 1  # ISA-L's level 1 deflates smaller than zlib's 1, at about three times its speed


@dataclass
class EntryInfo:
    path: str
    size: int
    sha256: str
    records: int | None = None
    source_path: str | None = None  # a copied file's path in its source, as the source names it

    def as_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"path": self.path, "size": self.size, "sha256": self.sha256}
        if self.records is not None:
            entry["records"] = self.records
        if self.source_path is not None:
            entry.update(_source_path(self.source_path))
        return entry


def _source_path(path: str) -> dict[str, str]:
    """`sourcePath`, and `sourcePathBytes` (base64) when the name is not UTF-8: a POSIX name
    is bytes, which Python carries as surrogate escapes and JSON cannot hold."""
    try:
        path.encode()
    except UnicodeEncodeError:
        raw = os.fsencode(path)
        return {
            "sourcePath": raw.decode(errors="replace"),
            "sourcePathBytes": base64.b64encode(raw).decode(),
        }
    return {"sourcePath": path}


@dataclass
class SourceSummary:
    name: str
    kind: str
    records: int = 0
    files: int = 0
    bytes: int = 0


@dataclass
class PackageWriter:
    """Writes a package to `stream`. Call `close()` to finish it (manifest last)."""

    stream: IO[bytes]
    header: dict[str, Any]  # operation id, user, times: copied into the manifest
    entries: list[EntryInfo] = field(default_factory=list)
    sources: dict[str, SourceSummary] = field(default_factory=dict)
    labels: ReportLabels = field(default_factory=ReportLabels)  # what the report says of the data
    samples: list[TableSample] = field(default_factory=list)  # each table's rows for the report
    # The time its entries carry (UTC: ZIP times have no zone), the export's start; a copied
    # file carries its own modification time instead.
    modified: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        self._zip = zipfile.ZipFile(self.stream, "w", compression=zipfile.ZIP_DEFLATED)
        self._names = EntryNames(reserved=(MANIFEST, INDEX, *DOCUMENTS))

    def source(self, name: str, kind: str) -> SourceSummary:
        return self.sources.setdefault(name, SourceSummary(name, kind))

    def add_records(
        self, source: SourceSummary, name: str, batches: Iterable[JsonLines]
    ) -> Generator[int, None, None]:
        """Write the encoded record batches; yields the number of records of each batch."""
        path = self._names.allocate(("records", _safe(source.name), f"{_safe(name)}.jsonl"))
        digest, size, count = hashlib.sha256(), 0, 0
        sample = TableSample(source.name, name)
        with self._open(self._entry(path)) as entry:
            for batch in batches:
                entry.write(batch.data)
                sample.take(batch.data)
                digest.update(batch.data)
                size += len(batch.data)
                count += batch.records
                yield batch.records
        self.entries.append(EntryInfo(path, size, digest.hexdigest(), count))
        sample.path, sample.records = path, count
        self.samples.append(sample)
        source.records += count
        source.bytes += size

    def add_file(
        self, source: SourceSummary, relative_path: str, content: IO[bytes]
    ) -> Generator[int, None, None]:
        """Copy a file into the package under a safe name; yields the number of bytes of each
        chunk copied. `relative_path` is the file's path in its source, `/`-separated, each
        part as the file system names it (undecodable bytes as surrogate escapes)."""
        parts = ("files", _safe(source.name), *relative_path.split("/"))
        path = self._names.allocate(parts)
        digest, size = hashlib.sha256(), 0
        chunk = content.read(COPY_CHUNK)
        stored = len(chunk) >= SAMPLE_MIN and not _deflates(chunk)
        with self._open(self._entry(path, _modified(content, self.modified), stored)) as entry:
            while chunk:
                entry.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                yield len(chunk)
                chunk = content.read(COPY_CHUNK)
        self.entries.append(EntryInfo(path, size, digest.hexdigest(), source_path=relative_path))
        source.files += 1
        source.bytes += size

    def add_document(self, name: str, data: bytes | Iterable[bytes]) -> None:
        """Write an entry at the package's top level under `name`, one of the names the format
        reserves there (`DOCUMENTS`), listed in the manifest like every entry: whole, or
        streamed in chunks."""
        assert name in DOCUMENTS
        assert all(entry.path != name for entry in self.entries)
        digest, size = hashlib.sha256(), 0
        with self._open(self._entry(name)) as entry:
            for chunk in [data] if isinstance(data, bytes) else data:
                entry.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        self.entries.append(EntryInfo(name, size, digest.hexdigest()))

    def close(self, trailer: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write the summary and the manifest and finish the ZIP; returns the manifest.

        `trailer` adds header fields known only at the end (the creation time)."""
        manifest = {
            "formatVersion": FORMAT_VERSION,
            **self.header,
            **(trailer or {}),
            "sources": [vars(s) for s in self.sources.values()],
        }
        entries = [entry.as_json() for entry in self.entries]
        index = render_report(manifest, entries, self.samples, self.labels).encode()
        with self._open(self._entry(INDEX)) as entry:
            entry.write(index)
        self.entries.append(EntryInfo(INDEX, len(index), hashlib.sha256(index).hexdigest()))
        manifest["files"] = [e.as_json() for e in self.entries]
        with self._open(self._entry(MANIFEST)) as entry:
            entry.write(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        self._zip.close()
        return manifest

    def abandon(self) -> None:
        """Give up on an unfinished package: close the ZIP now, while its stream is open,
        rather than leave zipfile to fail at garbage collection. The caller discards the
        bytes written."""
        with contextlib.suppress(Exception):
            self._zip.close()

    def _entry(
        self, path: str, modified: datetime | None = None, stored: bool = False
    ) -> zipfile.ZipInfo:
        """A new entry's header: its time (`modified`, else the package's), and deflated
        unless `stored` (a file that does not compress: photos, video, archives, judged by its
        first chunk, since deflating such a file costs more than the rest of the copy and saves
        nothing). Permissions are zipfile's default for a new entry (0600)."""
        info = zipfile.ZipInfo(path, _zip_time(modified or self.modified))
        info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
        return info

    def _open(self, entry: zipfile.ZipInfo) -> IO[bytes]:
        """A new entry, open for writing. A deflated entry is deflated by ISA-L rather than
        zlib: deflating is the largest part of an export's CPU time, and zipfile offers no way
        to choose the compressor, so the entry's (private) compressor is replaced before the
        first byte is written. Its output is the same raw deflate stream zlib's would be, and
        zipfile still computes the CRC and sizes; tests/engine/test_package.py pins the swap."""
        opened = self._zip.open(entry, "w", force_zip64=True)
        if getattr(opened, "_compressor", None) is not None:
            # zipfile's private writer attribute, which IO[bytes] does not declare (see above)
            opened._compressor = isal_zlib.compressobj(  # type: ignore[attr-defined]
                DEFLATE_LEVEL, isal_zlib.DEFLATED, -isal_zlib.MAX_WBITS
            )
        return opened


def _safe(name: str) -> str:
    """A single path segment: no separators, no dot-dot."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".")
    return cleaned or "_"


_ZIP_FIRST, _ZIP_LAST = (
    datetime(1980, 1, 1, tzinfo=UTC),
    datetime(2107, 12, 31, 23, 59, 58, tzinfo=UTC),
)


def _zip_time(when: datetime) -> tuple[int, int, int, int, int, int]:
    """`when` in UTC as a ZIP entry's time, within what the format holds (1980 to 2107)."""
    when = min(max(when.astimezone(UTC), _ZIP_FIRST), _ZIP_LAST)
    return (when.year, when.month, when.day, when.hour, when.minute, when.second)


def _modified(content: IO[bytes], otherwise: datetime) -> datetime:
    """When the open file `content` was last modified; `otherwise` if it is no file."""
    try:
        return datetime.fromtimestamp(os.fstat(content.fileno()).st_mtime, UTC)
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return otherwise


def _deflates(head: bytes) -> bool:
    """Whether deflate shrinks `head`, from slices spread over all of it (so that a header or a
    run of padding at the start does not decide for the whole chunk)."""
    step = max(SAMPLE_SLICE, len(head) // SAMPLE_SLICES)
    sample = b"".join(head[i : i + SAMPLE_SLICE] for i in range(0, len(head), step))
    return len(isal_zlib.compress(sample, DEFLATE_LEVEL)) < len(sample) * STORE_ABOVE
