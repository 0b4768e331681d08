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
NAME_MAX = 255  # bytes in one path component, on every file system Linux writes to


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
        """The destination is inside a root and is (or can be made) a writable directory;
        nothing is created."""
        self._resolved(create=False)

    def prepare(self) -> None:
        """The destination directory is created (0700), each missing level below the root."""
        self._resolved(create=True)

    def _resolved(self, *, create: bool) -> tuple[Path, Path]:
        """The allowed root and the destination inside it, symlinks resolved. With `create`,
        the destination is created (0700) if it does not exist yet; without, the nearest
        directory that exists on its way must be writable."""
        if "\\" in str(self.directory) or str(self.directory).startswith("//"):
            raise StorageLocationError(
                "A local storage location is a POSIX path: backslashes and network paths "
                "(//host/share, \\\\host\\share) are not accepted."
            )
        if ".." in self.directory.parts:
            raise StorageLocationError("The storage location may not contain '..'.")
        if any(len(os.fsencode(part)) > NAME_MAX for part in self.directory.parts):
            raise StorageLocationError(
                f"The storage location has a path component longer than {NAME_MAX} bytes."
            )
        if not self.roots:
            raise StorageLocationError(
                "Local storage locations are not enabled (no [storage.local] roots configured)."
            )
        try:
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
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
            raise StorageLocationError(
                f"The storage location '{self.directory}' cannot be resolved: "
                f"{getattr(exc, 'strerror', None) or 'a symbolic link loop'}."
            ) from None
        if create:
            try:
                for directory in (*reversed(resolved.parents), resolved):
                    if directory != root and root not in directory.parents:
                        continue  # above the root: the operator's
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(directory, 0o700)  # owner-only, each level made here
            except OSError as exc:
                raise StorageLocationError(
                    f"The storage location '{self.directory}' cannot be created: {exc.strerror}."
                ) from None
        existing = next(d for d in (resolved, *resolved.parents) if d.exists())
        if not existing.is_dir():
            raise StorageLocationError(
                f"The storage location '{self.directory}' cannot be created: "
                f"'{existing}' on its way is not a directory."
            )
        if not os.access(existing, os.W_OK | os.X_OK):
            raise StorageLocationError(f"The storage location '{self.directory}' is not writable.")
        return root, resolved

    def _open_directory(self, *, create: bool = True) -> tuple[int, Path] | None:
        """The destination checked again (at write time, not only on request) and opened: a
        descriptor reached from the root one directory at a time without following symlinks,
        so that a directory swapped for a symlink after the check is refused, not followed.
        Files are then created, renamed and removed relative to it. Without `create`, None if
        the destination does not exist (nothing is created to remove a file from it)."""
        root, resolved = self._resolved(create=create)
        descriptor = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for part in resolved.relative_to(root).parts:
                inner = os.open(
                    part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=descriptor
                )
                os.close(descriptor)
                descriptor = inner
        except OSError as exc:
            os.close(descriptor)
            if not create and isinstance(exc, FileNotFoundError):
                return None
            raise StorageLocationError(
                f"The storage location '{self.directory}' changed while in use (a directory on "
                "its way is now a symlink or gone): nothing was written."
            ) from None
        return descriptor, resolved

    def begin(self, operation_id: str) -> Upload:
        opened = self._open_directory()
        assert opened is not None  # created if missing
        directory, path = opened
        name = f".{operation_id}{PARTIAL_SUFFIX}"
        try:
            # An earlier attempt's partial file goes: created afresh, the file is owner-only
            # whatever the old one was (a mode applies only to a file that O_CREAT makes).
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=directory)
            descriptor = os.open(
                name,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                stat.S_IRUSR | stat.S_IWUSR,
                dir_fd=directory,
            )
        except OSError as exc:
            os.close(directory)
            raise StorageError(f"cannot create {path / name}: {exc.strerror}") from None
        return _LocalUpload(
            io.BufferedWriter(PartialFile(descriptor, path / name)),
            directory,
            path,
            name,
            f"{operation_id}{PACKAGE_SUFFIX}",
        )

    def discard_partial(self, operation_id: str) -> None:
        with contextlib.suppress(StorageLocationError):  # not permitted: nothing of ours there
            self._remove(f".{operation_id}{PARTIAL_SUFFIX}")

    def delete(self, operation_id: str) -> bool:
        return self._remove(f"{operation_id}{PACKAGE_SUFFIX}")

    def _remove(self, name: str) -> bool:
        """Remove `name` from the destination; False if it was not there. StorageLocationError
        if the location is no longer permitted (or changed under us)."""
        opened = self._open_directory(create=False)
        if opened is None:
            return False
        directory, _ = opened
        try:
            os.unlink(name, dir_fd=directory)
        except FileNotFoundError:
            return False
        finally:
            os.close(directory)
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
    """The partial file and the final name, both in the directory open as `directory`."""

    def __init__(self, stream: IO[bytes], directory: int, path: Path, partial: str, final: str):
        self.stream = stream
        self.directory = directory
        self.path = path  # what `directory` was opened as, for messages and the result
        self.partial = partial
        self.final = final
        self.identity = _identity(os.fstat(stream.fileno()))  # which file `partial` is ours

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
            raise StorageError(f"cannot write {self.path / self.partial}: {exc.strerror}") from None

    def publish(self) -> str:
        try:
            os.replace(
                self.partial, self.final, src_dir_fd=self.directory, dst_dir_fd=self.directory
            )
            os.fsync(self.directory)
        except OSError as exc:
            self.discard()
            raise StorageError(f"cannot publish {self.path / self.final}: {exc.strerror}") from None
        self._close_directory()
        return str(self.path / self.final)

    def discard(self) -> None:
        if not self.stream.closed:
            # Closing flushes the buffer, which fails again if the storage refused the writes
            # before; the file goes either way.
            with contextlib.suppress(OSError, StorageError):
                self.stream.close()
        if self.directory >= 0:
            with contextlib.suppress(FileNotFoundError):
                # Only if the name is still our file: a worker whose lease expired (paused past
                # it) must not remove the partial file of the worker that took the export over,
                # which has the same name (tests/engine/test_local_partial.py).
                found = os.stat(self.partial, dir_fd=self.directory, follow_symlinks=False)
                if _identity(found) == self.identity:
                    os.unlink(self.partial, dir_fd=self.directory)
            self._close_directory()

    def _close_directory(self) -> None:
        if self.directory >= 0:
            os.close(self.directory)
            self.directory = -1


def _identity(status: os.stat_result) -> tuple[int, int]:
    return status.st_dev, status.st_ino


def local_target(location: str, roots: tuple[Path, ...]) -> LocalTarget | None:
    path = parse_local_location(location)
    return None if path is None else LocalTarget(path, roots)
