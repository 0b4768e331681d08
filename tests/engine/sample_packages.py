"""Real packages for the storage targets' tests: a target checks what it is about to publish
against the package's manifest (`Upload.finish(manifest)`), so the tests write packages, not
arbitrary bytes."""

from __future__ import annotations

import io
from typing import IO, Any

from datapolicy.engine.package import PackageWriter


def write_package(stream: IO[bytes], payload: bytes, who: str = "test") -> dict[str, Any]:
    """A package holding `payload` as one file, marked as `who`'s, written to `stream`; its
    manifest."""
    writer = PackageWriter(stream, {"operationId": "op", "writtenBy": who})
    source = writer.source("notes", "files")
    for _ in writer.add_file(source, "payload.bin", io.BytesIO(payload)):
        pass
    return writer.close()


def package_bytes(payload: bytes, who: str = "test") -> tuple[bytes, dict[str, Any]]:
    """The bytes of a package holding `payload` (as a seekable target writes it), and its
    manifest."""
    buffer = io.BytesIO()
    manifest = write_package(buffer, payload, who)
    return buffer.getvalue(), manifest
