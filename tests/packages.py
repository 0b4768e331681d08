"""Packages for tests: made from file sources by the real exporter, into memory, and judged by
reference rules written apart from engine/entrynames.py; and small real packages for the storage
targets' tests (a target checks what it is about to publish against the package's manifest,
`Upload.finish(manifest)`, so those tests write packages, not arbitrary bytes)."""

from __future__ import annotations

import io
import unicodedata
from datetime import UTC, datetime
from typing import IO, Any

from datapolicy.config import FileSourceConfig
from datapolicy.engine.directory import User
from datapolicy.engine.exporter import Progress, export
from datapolicy.engine.package import PackageWriter
from datapolicy.engine.sources.files import FileSource
from datapolicy.model import Operation, OperationStatus


def file_source(template: str, name: str = "documents") -> FileSource:
    return FileSource(FileSourceConfig(name=name, path=template))


def export_in_memory(files: FileSource, user_id: str) -> bytes:
    """The user's package, as the worker's exporter writes it."""
    now = datetime.now(UTC)
    operation = Operation("op", user_id, OperationStatus.RUNNING, 0, None, now, None, 1)
    stream = io.BytesIO()
    export(operation, User(user_id), [files], stream, Progress(), lambda: now)
    return stream.getvalue()


def reference_unsafe(name: str) -> bool:
    """Whether an entry name is unsafe to extract: NFKC of the whole name, then plain rules."""
    folded = unicodedata.normalize("NFKC", name)
    return (
        folded.startswith("/")
        or any(c in "\\:" or unicodedata.category(c)[0] == "C" for c in folded)
        or any(unicodedata.category(c) in ("Zl", "Zp", "Cs") for c in name)
        or any(part.strip(".") == "" for part in folded.split("/"))
    )


def reference_clashes(names: list[str]) -> bool:
    """Whether two names are one file on a case-insensitive file system, or a file has a
    folder's name."""
    keys = [unicodedata.normalize("NFKC", name).casefold() for name in names]
    folders = {key.rsplit("/", depth)[0] for key in keys for depth in range(1, key.count("/") + 1)}
    return len(set(keys)) != len(keys) or bool(folders & set(keys))


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
