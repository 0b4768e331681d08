"""The package writer: entries, their checksums, and how they are compressed."""

from __future__ import annotations

import io
import os
import zipfile

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
