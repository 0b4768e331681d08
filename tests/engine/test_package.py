"""The package writer: entries, their checksums, and how they are compressed."""

from __future__ import annotations

import io
import os
import zipfile
from datetime import UTC, datetime

import orjson
from isal import isal_zlib

from datapolicy.engine.package import PackageWriter
from datapolicy.engine.sources.jsonlines import encode_rows


def test_entries_are_deflated_by_isal_and_read_back_by_any_unzip(tmp_path):
    """Record entries are deflated with ISA-L (zipfile's compressor is swapped for it: if a
    Python release changes zipfile's internals, this fails), incompressible files are stored,
    and the result reads back with the standard library byte for byte."""
    rows = [{"id": n, "text": "the same words again " * 5} for n in range(2000)]
    photo = os.urandom(256 * 1024)
    stream = io.BytesIO()
    writer = PackageWriter(stream, {"operationId": "op", "user": {"id": "u"}})
    summary = writer.source("shop", "sql")
    batches = [encode_rows(rows[:1000]), encode_rows(rows[1000:])]
    list(writer.add_records(summary, "rows", batches))
    list(writer.add_file(summary, "photo.jpg", io.BytesIO(photo)))
    manifest = writer.close()

    with zipfile.ZipFile(io.BytesIO(stream.getvalue())) as archive:
        assert archive.testzip() is None
        records = archive.getinfo("records/shop/rows.jsonl")
        assert records.compress_type == zipfile.ZIP_DEFLATED
        isal = isal_zlib.compressobj(1, isal_zlib.DEFLATED, -isal_zlib.MAX_WBITS)
        deflated = b"".join(isal.compress(batch.data) for batch in batches) + isal.flush()
        assert records.compress_size == len(deflated)  # zlib's would differ
        assert records.compress_size < records.file_size / 5
        lines = archive.read("records/shop/rows.jsonl").splitlines()
        assert [orjson.loads(line) for line in lines] == rows
        assert archive.getinfo("files/shop/photo.jpg").compress_type == zipfile.ZIP_STORED
        assert archive.read("files/shop/photo.jpg") == photo
    assert manifest["sources"][0]["records"] == 2000


def test_entries_carry_the_export_time_and_files_their_own(tmp_path):
    """Entries are dated with the package's time (the export's start, in UTC), not ZIP's
    1980-01-01; a copied file with its own modification time; a time ZIP cannot hold is
    clamped to its range."""
    started = datetime(2026, 12, 6, 19, 30, 15, tzinfo=UTC)
    note = tmp_path / "note.txt"
    note.write_bytes(b"hello")
    os.utime(note, (0, datetime(2024, 2, 29, 12, 0, 2, tzinfo=UTC).timestamp()))
    ancient = tmp_path / "ancient.txt"
    ancient.write_bytes(b"old")
    os.utime(ancient, (0, 0))  # 1970: before ZIP's first day
    stream = io.BytesIO()
    writer = PackageWriter(stream, {"operationId": "op", "user": {"id": "u"}}, modified=started)
    summary = writer.source("shop", "sql")
    list(writer.add_records(summary, "rows", [encode_rows([{"id": 1}])]))
    with note.open("rb") as content:
        list(writer.add_file(summary, "note.txt", content))
    with ancient.open("rb") as content:
        list(writer.add_file(summary, "ancient.txt", content))
    list(writer.add_file(summary, "memory.bin", io.BytesIO(b"no file behind it")))
    writer.close()
    with zipfile.ZipFile(io.BytesIO(stream.getvalue())) as archive:
        times = {info.filename: info.date_time for info in archive.infolist()}
    assert times.pop("files/shop/note.txt") == (2024, 2, 29, 12, 0, 2)
    assert times.pop("files/shop/ancient.txt") == (1980, 1, 1, 0, 0, 0)
    assert set(times.values()) == {(2026, 12, 6, 19, 30, 14)}  # ZIP counts in two seconds
