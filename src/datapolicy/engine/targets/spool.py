"""Spool files: a package kept on local disk while it is made, for a storage that can only take it
whole, in one request (a presigned S3 PUT).

Memory stays flat whatever the package's size: it is written to the file as it is made, and read
back from it when sent. Each attempt writes a file of its own, `<operationId>.<nonce>.spool`,
owner-only (0600) in an owner-only (0700) spool directory. Starting an attempt removes whatever
earlier attempts of the same operation left (a killed worker), so a retry starts afresh; files
that nobody has touched for longer than `stale_after` are swept at the same time, so that a
worker killed on an operation's last attempt (which no retry cleans up after) does not leak a
file for ever.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from datapolicy.engine.targets.base import StorageError
from datapolicy.engine.targets.local import PartialFile

SUFFIX = ".spool"
_NONCE = re.compile(r"^[0-9a-f]{32}$")


class _LimitedFile(PartialFile):
    """A spool file that refuses to grow past `limit` bytes, with `too_large` as the reason:
    the export fails as soon as the package passes what the storage can take, not at the end.
    (The file is seekable, and zipfile goes back to fill in headers: what counts is how far a
    write reaches, not how much has been written.)"""

    def __init__(self, descriptor: int, path: Path, limit: int, too_large: str):
        super().__init__(descriptor, path)
        self.limit = limit
        self.too_large = too_large

    def write(self, data: Any, /) -> int:
        if self.tell() + memoryview(data).nbytes > self.limit:
            raise StorageError(self.too_large, permanent=True)
        return super().write(data)


class Spool:
    """One attempt's spool file: `stream` takes the package; `close()` ends it."""

    def __init__(self, path: Path, raw: _LimitedFile):
        self.path = path
        self._raw = raw
        self.stream = io.BufferedWriter(raw)

    def close(self) -> int:
        """Write out what is buffered; the file's size. StorageError if the disk refuses."""
        try:
            self.stream.flush()
            size = os.fstat(self._raw.fileno()).st_size
            self.stream.close()
        except OSError as exc:
            raise StorageError(f"cannot write {self.path}: {exc.strerror}") from None
        return size

    def remove(self) -> None:
        """Remove the file (and drop what is buffered). Safe to call more than once."""
        if not self.stream.closed:
            # Closing flushes the buffer, which fails again if the disk refused the writes
            # before; the file goes either way.
            with contextlib.suppress(OSError, StorageError):
                self.stream.close()
        self.path.unlink(missing_ok=True)


def start_spool(
    directory: Path, operation_id: str, *, limit: int, too_large: str, stale_after: timedelta
) -> Spool:
    """A new spool file for an attempt at `operation_id`, after removing earlier attempts' files
    and stale ones. StorageError if the directory or the file cannot be created."""
    _check_id(operation_id)
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StorageError(
            f"cannot create the spool directory {directory}: {exc.strerror}"
        ) from None
    remove_spooled(directory, operation_id)
    _sweep(directory, stale_after)
    path = directory / f"{operation_id}.{uuid.uuid4().hex}{SUFFIX}"
    try:
        descriptor = os.open(
            path,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
            stat.S_IRUSR | stat.S_IWUSR,
        )
    except OSError as exc:
        raise StorageError(f"cannot create {path}: {exc.strerror}") from None
    return Spool(path, _LimitedFile(descriptor, path, limit, too_large))


def remove_spooled(directory: Path, operation_id: str) -> int:
    """Remove every spool file of `operation_id`; how many there were."""
    _check_id(operation_id)
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for path in directory.glob(f"{operation_id}.*{SUFFIX}"):
            if _NONCE.match(path.name[len(operation_id) + 1 : -len(SUFFIX)]):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def _sweep(directory: Path, stale_after: timedelta) -> None:
    cutoff = time.time() - stale_after.total_seconds()
    for path in directory.glob(f"*{SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            if path.lstat().st_mtime < cutoff:
                path.unlink()


def _check_id(operation_id: str) -> None:
    # Operation ids are the server's UUIDs; anything that could leave the directory or match
    # another operation's files (a glob character) is a bug, not a request to honour.
    name = Path(operation_id).name
    if not name or name != operation_id or name.startswith(".") or set("*?[") & set(name):
        raise ValueError(f"not an operation id: {operation_id!r}")
