"""Spool files: a package kept on local disk while it is made, for a storage that can only take it
whole, in one request (a presigned S3 PUT).

Memory stays flat whatever the package's size: it is written to the file as it is made, and read
back from it when sent. Each attempt writes a file of its own, `<operationId>.<nonce>.spool`,
owner-only (0600) in an owner-only (0700) spool directory. An attempt never touches another
attempt's file (one whose worker stalled past its lease and woke up must not remove its
successor's): what a killed worker left is removed by `remove_spooled` once the operation
fails or is deleted, by the workers' sweep (`sweep` with the lease's age, for operations not
running), and, whatever happens, by `start_spool` once nobody has touched it for `stale_after`.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from datapolicy.engine.targets.base import StorageError, write_error
from datapolicy.engine.targets.local import PartialFile

SUFFIX = ".spool"
_NONCE = re.compile(r"^[0-9a-f]{32}$")


class _LimitedFile(PartialFile):
    """A spool file that refuses to grow past `limit` bytes, with `too_large` as the reason:
    the export fails as soon as the package passes what the storage can take, not at the end.
    (The file is seekable, and zipfile goes back to fill in headers: what counts is how far a
    write reaches, not how much has been written.)"""

    def __init__(self, descriptor: int, where: str, limit: int, too_large: str):
        super().__init__(descriptor, where)
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
            raise write_error(exc, self._raw.where) from None
        return size

    def reader(self) -> IO[bytes]:
        """The closed spool file, open for reading."""
        return self.path.open("rb")

    def remove(self) -> None:
        """Remove the file (and drop what is buffered). Safe to call more than once."""
        if not self.stream.closed:
            # Closing flushes the buffer, which fails again if the disk refused the writes
            # before; the file goes either way.
            with contextlib.suppress(OSError, StorageError):
                self.stream.close()
        self.path.unlink(missing_ok=True)


def start_spool(
    directory: Path,
    operation_id: str,
    *,
    limit: int,
    too_large: str,
    stale_after: timedelta,
    where: str,
) -> Spool:
    """A new spool file for an attempt at `operation_id`, after removing stale files of any
    operation. StorageError if the directory or the file cannot be created; a full disk names
    `where` (the target the package is for), not the spool file."""
    _check_id(operation_id)
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StorageError(
            f"cannot create the spool directory {directory}: {exc.strerror}"
        ) from None
    sweep(directory, stale_after.total_seconds())
    path = directory / f"{operation_id}.{uuid.uuid4().hex}{SUFFIX}"
    spooling = f"the spool directory for {where}"
    try:
        descriptor = os.open(
            path,
            os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
            stat.S_IRUSR | stat.S_IWUSR,
        )
    except OSError as exc:
        raise write_error(exc, spooling) from None
    return Spool(path, _LimitedFile(descriptor, spooling, limit, too_large))


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


def sweep(
    directory: Path, older_than: float, running: Callable[[str], bool] = lambda _: False
) -> list[Path]:
    """Remove the spool files nobody has written for `older_than` seconds whose operation is
    not `running`; returns what was removed."""
    cutoff = time.time() - older_than
    removed = []
    for path in directory.glob(f"*{SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            if path.lstat().st_mtime < cutoff and not running(path.name.split(".", 1)[0]):
                path.unlink()
                removed.append(path)
    return removed


def _check_id(operation_id: str) -> None:
    # Operation ids are the server's UUIDs; anything that could leave the directory or match
    # another operation's files (a glob character) is a bug, not a request to honour.
    name = Path(operation_id).name
    if not name or name != operation_id or name.startswith(".") or set("*?[") & set(name):
        raise ValueError(f"not an operation id: {operation_id!r}")
