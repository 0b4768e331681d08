"""The storage Target seam: where a finished package is published.

A target is chosen by the operation's `storageLocation` (see `targets.resolve_target`). When a
request names it, `check()` says whether packages can be written there without changing anything,
and `prepare()`, only once an export is really started or moved there, makes it ready. Writing
is a three-step protocol so that publication is atomic on every kind of storage:

1. `begin(operation_id)` returns an `Upload`: a writable binary stream that receives the package
   as it is made (a temporary file, uncommitted blocks, an unfinished multipart upload);
2. `Upload.finish(manifest)` makes everything written durable but still invisible (fsync, last
   block) and checks it against the manifest the writer returned (a bad package fails the
   attempt instead of being published);
3. `Upload.publish()` makes it appear under its final name in one quick step (a rename, a block
   list commit), or `Upload.discard()` removes every trace of it.

`publish()` runs while the worker holds the store's lock that proves it still owns the operation,
so it must be short; the slow work belongs in `finish()`.

Every attempt writes things of its own (a partial file or spool file named for the attempt, an
S3 multipart upload of its own, Azure blocks with ids of its own), so that an attempt whose
worker stalled past its lease and then woke up cannot touch its successor's package; `discard()`
removes only the attempt's own. `discard_partial(operation_id)` removes what every attempt at the
operation left, once none of them can still publish (the operation failed or was deleted), and
`delete(operation_id)` removes a published package.
"""

from __future__ import annotations

import errno
import io
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import IO, Any

from datapolicy.errors import ExportError, InvalidRequest


class StorageLocationError(InvalidRequest):
    """The storage location is malformed, not permitted or not writable (a 400 at the API)."""

    code = "StorageLocationInvalid"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message, code=code, target="storageLocation")


class StorageError(ExportError):
    """Writing to the storage failed (a failed operation, with this message as the reason).

    `permanent`: the storage refused the request itself (credentials revoked or refused, a
    bucket or container gone, a URL expired), so another attempt would fail the same way; the
    worker fails the operation at once instead of retrying it after backoff."""


# A write refused because the storage has no room (a full disk, a user's disk quota, a file
# size limit): another attempt would be refused the same way while nobody frees space.
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def write_error(exc: OSError, where: str) -> StorageError:
    """The StorageError for a failed local write, naming `where` (the target as the operation
    names it, not a file of ours). No room is permanent: the attempt fails at once."""
    if exc.errno in _NO_ROOM:
        return StorageError(f"{where} is full ({exc.strerror})", permanent=True)
    return StorageError(f"cannot write the package to {where}: {exc.strerror}")


class Upload(ABC):
    stream: IO[bytes]

    @abstractmethod
    def finish(self, manifest: dict[str, Any]) -> None:
        """Make everything written durable, without making it visible, and check it against
        the `manifest` the package was written with; StorageError (after discarding) if it
        does not match."""

    @abstractmethod
    def publish(self) -> str:
        """Make the package visible at its final name; returns where it now is."""

    @abstractmethod
    def discard(self) -> None:
        """Remove everything this upload wrote. Safe to call more than once."""


class Target(ABC):
    # False where `delete()` cannot remove a published package (a presigned PUT URL): retention
    # then records that it could not, instead of asking.
    can_delete = True

    @abstractmethod
    def check(self) -> None:
        """Raise StorageLocationError if packages cannot be written here. Leaves nothing behind
        (no directory, file or blob): it also runs for requests that are then refused (a PATCH
        answered 409 or 412) and for package downloads."""

    @abstractmethod
    def prepare(self) -> None:
        """Make the destination ready for an export that is really starting, after `check()`:
        create its directory, mark a container as used. StorageLocationError if that is
        refused."""

    @abstractmethod
    def begin(self, operation_id: str) -> Upload: ...

    @abstractmethod
    def discard_partial(self, operation_id: str) -> None:
        """Remove what an interrupted upload for this operation may have left."""

    @abstractmethod
    def delete(self, operation_id: str) -> bool:
        """Delete the published package; False if there was none."""


class ChunkedStream(io.RawIOBase):
    """A write-only stream for object stores: buffers what is written and hands it on in
    chunks (a block, a multipart part) of `chunk_size()` bytes, so memory stays at one chunk.

    Closing hands on the rest; `abandon()` drops it, for an upload being discarded."""

    def __init__(self, chunk_size: Callable[[], int], emit: Callable[[bytes], None]):
        self.chunk_size = chunk_size
        self.emit = emit
        self.buffer = bytearray()
        self.abandoned = False
        self.written = 0  # bytes written to the stream, to compare with what the storage took

    def writable(self) -> bool:
        return True

    def write(self, data: Any, /) -> int:
        if self.closed:
            raise ValueError("write to a closed stream")
        view = memoryview(data).cast("B")
        self.buffer += view
        self.written += len(view)
        while len(self.buffer) >= (size := self.chunk_size()):
            chunk = bytes(self.buffer[:size])
            del self.buffer[:size]
            self.emit(chunk)
        return len(view)

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self.buffer and not self.abandoned:
                self.emit(bytes(self.buffer))
        finally:
            self.buffer = bytearray()
            super().close()

    def abandon(self) -> None:
        self.abandoned = True
        self.buffer = bytearray()
        if not self.closed:
            super().close()
