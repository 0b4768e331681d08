"""The local directory target: a path or `file://` URL inside a configured root.

The package is written to a hidden temporary file in the destination directory and renamed to
`<operationId>.zip` when complete: a rename within one directory is atomic, so a reader sees
either no package or the whole of it. Files are created owner-only (0600).
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

from datapolicy.engine.targets.base import StorageError, StorageLocationError, Target, Upload

PACKAGE_SUFFIX = ".zip"
PARTIAL_SUFFIX = ".zip.partial"


def parse_local_location(location: str) -> Path | None:
    """The path a location names, if it is a local one (absolute path or file:// URL)."""
    if location.startswith("file:"):
        parsed = urlparse(location)
        if parsed.netloc not in ("", "localhost") or parsed.query or parsed.fragment:
            raise StorageLocationError(
                "A file:// storage location must be a local absolute path without a host, "
                "query or fragment."
            )
        return Path(unquote(parsed.path))
    if location.startswith("/"):
        return Path(location)
    return None


class LocalTarget(Target):
    def __init__(self, directory: Path, roots: tuple[Path, ...]):
        self.directory = directory
        self.roots = roots

    def check(self) -> None:
        self._resolved()

    def _resolved(self) -> Path:
        """The destination with symlinks resolved, checked to lie inside an allowed root."""
        if "\x00" in str(self.directory):
            raise StorageLocationError("The storage location contains a NUL character.")
        if ".." in self.directory.parts:
            raise StorageLocationError("The storage location may not contain '..'.")
        if not self.roots:
            raise StorageLocationError(
                "Local storage locations are not enabled (no [storage.local] roots configured)."
            )
        resolved = self.directory.resolve()
        for root in self.roots:
            root = root.resolve()
            if resolved == root or root in resolved.parents:
                break
        else:
            raise StorageLocationError(
                f"The storage location '{self.directory}' is not inside an allowed root."
            )
        if resolved.exists() and not resolved.is_dir():
            raise StorageLocationError(
                f"The storage location '{self.directory}' exists and is not a directory."
            )
        try:
            resolved.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StorageLocationError(
                f"The storage location '{self.directory}' cannot be created: {exc.strerror}."
            ) from None
        if not os.access(resolved, os.W_OK | os.X_OK):
            raise StorageLocationError(f"The storage location '{self.directory}' is not writable.")
        return resolved

    def begin(self, operation_id: str) -> Upload:
        directory = self._resolved()  # checked again at write time, not only on request
        partial = directory / f".{operation_id}{PARTIAL_SUFFIX}"
        try:
            descriptor = os.open(
                partial,
                os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                stat.S_IRUSR | stat.S_IWUSR,
            )
        except OSError as exc:
            raise StorageError(f"cannot create {partial}: {exc.strerror}") from None
        return _LocalUpload(
            io.BufferedWriter(PartialFile(descriptor, partial)),
            partial,
            directory / f"{operation_id}{PACKAGE_SUFFIX}",
        )

    def discard_partial(self, operation_id: str) -> None:
        try:
            directory = self._resolved()
        except StorageLocationError:
            return
        (directory / f".{operation_id}{PARTIAL_SUFFIX}").unlink(missing_ok=True)

    def delete(self, operation_id: str) -> bool:
        try:
            directory = self._resolved()
        except StorageLocationError:
            return False
        package = directory / f"{operation_id}{PACKAGE_SUFFIX}"
        try:
            package.unlink()
        except FileNotFoundError:
            return False
        return True


class PartialFile(io.FileIO):
    """The partial package on disk. A write the storage refuses part-way (a full disk, a quota,
    an I/O error) raises StorageError naming the file, like every other storage failure."""

    def __init__(self, descriptor: int, path: Path):
        super().__init__(descriptor, "wb")
        self.path = path

    def write(self, data: Any, /) -> int:
        try:
            return super().write(data)
        except OSError as exc:
            raise StorageError(f"cannot write {self.path}: {exc.strerror}") from None


class _LocalUpload(Upload):
    def __init__(self, stream: IO[bytes], partial: Path, final: Path):
        self.stream = stream
        self.partial = partial
        self.final = final

    def finish(self) -> None:
        try:
            self.stream.flush()
            os.fsync(self.stream.fileno())
            self.stream.close()
        except StorageError:  # the final flush was refused (see PartialFile)
            self.discard()
            raise
        except OSError as exc:
            self.discard()
            raise StorageError(f"cannot write {self.partial}: {exc.strerror}") from None

    def publish(self) -> str:
        try:
            os.replace(self.partial, self.final)
            directory = os.open(self.final.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as exc:
            self.discard()
            raise StorageError(f"cannot publish {self.final}: {exc.strerror}") from None
        return str(self.final)

    def discard(self) -> None:
        if not self.stream.closed:
            # Closing flushes the buffer, which fails again if the storage refused the writes
            # before; the file goes either way.
            with contextlib.suppress(OSError, StorageError):
                self.stream.close()
        self.partial.unlink(missing_ok=True)


def local_target(location: str, roots: tuple[Path, ...]) -> LocalTarget | None:
    path = parse_local_location(location)
    return None if path is None else LocalTarget(path, roots)
