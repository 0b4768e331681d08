"""The local directory target: a path or `file://` URL inside a configured root.

The package is written to a hidden partial file in the destination directory and renamed to
`<operationId>.zip` when complete: a rename within one directory is atomic, so a reader sees
either no package or the whole of it. Files are created owner-only (0600).

Each attempt has a partial file of its own, `.<operationId>.<nonce>.zip.partial`, created
exclusively: an attempt whose worker stalled past its lease and woke up cannot remove, replace
or publish its successor's file (it publishes only its own, and only while its lease holds,
which the completing transaction checks). Before the rename the file is read back cheaply (its
central directory and manifest.json, `verify.check_written`). Partial files of attempts whose
worker died are removed by `discard_partial` once the operation fails or is deleted, and by
`sweep_partials` (an idle worker's sweep) once they are older than the lease and their operation
is not running under a live lease.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

from datapolicy.engine.nofollow import open_directory
from datapolicy.engine.targets.base import (
    StorageError,
    StorageLocationError,
    Target,
    Upload,
    write_error,
)
from datapolicy.engine.verify import check_written

PACKAGE_SUFFIX = ".zip"
PARTIAL_SUFFIX = ".zip.partial"
# `.<operationId>.<nonce>.zip.partial` (and the nonce-less name of versions before attempts had
# files of their own, still removed by discard_partial and the sweep).
_PARTIAL = re.compile(r"^\.(?P<operation>[0-9a-f-]{36})(?:\.[0-9a-f]{32})?\.zip\.partial$")
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
        root_descriptor = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            descriptor = open_directory(root_descriptor, resolved.relative_to(root).parts)
        except OSError as exc:
            if not create and isinstance(exc, FileNotFoundError):
                return None
            raise StorageLocationError(
                f"The storage location '{self.directory}' changed while in use (a directory on "
                "its way is now a symlink or gone): nothing was written."
            ) from None
        finally:
            os.close(root_descriptor)
        return descriptor, resolved

    @property
    def where(self) -> str:
        """The target in messages: the storage location as given."""
        return f"the storage location '{self.directory}'"

    def begin(self, operation_id: str) -> Upload:
        opened = self._open_directory()
        assert opened is not None  # created if missing
        directory, path = opened
        name = f".{operation_id}.{uuid.uuid4().hex}{PARTIAL_SUFFIX}"
        try:
            # Exclusively: this attempt's file, never another attempt's (nor a planted link).
            descriptor = os.open(
                name,
                os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                stat.S_IRUSR | stat.S_IWUSR,
                dir_fd=directory,
            )
        except OSError as exc:
            os.close(directory)
            raise write_error(exc, self.where) from None
        return _LocalUpload(
            io.BufferedWriter(PartialFile(descriptor, self.where)),
            directory,
            path,
            name,
            f"{operation_id}{PACKAGE_SUFFIX}",
            self.where,
        )

    def discard_partial(self, operation_id: str) -> None:
        """Remove every attempt's partial file of the operation."""
        with contextlib.suppress(StorageLocationError):  # not permitted: nothing of ours there
            opened = self._open_directory(create=False)
            if opened is None:  # no destination: no partial file either
                return
            directory, _ = opened
            try:
                for name in os.listdir(directory):
                    found = _PARTIAL.match(name)
                    if found and found["operation"] == operation_id:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(name, dir_fd=directory)
            finally:
                os.close(directory)

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
    an I/O error) raises StorageError naming the target (`where`), like every other storage
    failure: no room fails the attempt at once (`base.write_error`)."""

    def __init__(self, descriptor: int, where: str):
        super().__init__(descriptor, "rb+")
        self.where = where

    def write(self, data: Any, /) -> int:
        try:
            return super().write(data)
        except OSError as exc:
            raise write_error(exc, self.where) from None


class _LocalUpload(Upload):
    """This attempt's partial file and the final name, both in the directory open as
    `directory`."""

    def __init__(
        self, stream: IO[bytes], directory: int, path: Path, partial: str, final: str, where: str
    ):
        self.stream = stream
        self.directory = directory
        self.path = path  # what `directory` was opened as, for the result
        self.partial = partial
        self.final = final
        self.where = where

    def finish(self, manifest: dict[str, Any]) -> None:
        try:
            self.stream.flush()
            os.fsync(self.stream.fileno())
            self.stream.seek(0)
            # A BufferedWriter over a PartialFile (begin()), which IO[bytes] types without raw.
            problems = check_written(self.stream.raw, manifest)  # type: ignore[attr-defined]
            self.stream.close()
        except StorageError:  # the final flush was refused (see PartialFile)
            self.discard()
            raise
        except OSError as exc:
            self.discard()
            raise write_error(exc, self.where) from None
        if problems:
            self.discard()
            raise StorageError(
                f"the package written to {self.where} does not verify, so it was not "
                f"published: {'; '.join(problems)}"
            )

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
                os.unlink(self.partial, dir_fd=self.directory)  # this attempt's name: ours
            self._close_directory()

    def _close_directory(self) -> None:
        if self.directory >= 0:
            os.close(self.directory)
            self.directory = -1


def sweep_partials(
    roots: Iterable[Path], older_than: float, running: Callable[[str], bool]
) -> list[Path]:
    """Remove the partial files under `roots` that nobody has written for `older_than` seconds
    and whose operation is not `running` (under a live lease): what attempts whose worker died
    left behind (a partial file of a running operation may be a slow attempt's, waiting on a
    source). Directories are walked by descriptor without following symlinks (`os.fwalk`), so a
    directory swapped for a symlink cannot lead the sweep out of a root. Returns what was
    removed."""
    cutoff = time.time() - older_than
    removed = []
    for root in roots:
        if not root.is_dir():
            continue
        for directory, _, names, descriptor in os.fwalk(root):
            for name in names:
                found = _PARTIAL.match(name)
                if found is None:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    status = os.stat(name, dir_fd=descriptor, follow_symlinks=False)
                    if status.st_mtime < cutoff and not running(found["operation"]):
                        os.unlink(name, dir_fd=descriptor)
                        removed.append(Path(directory) / name)
    return removed


def local_target(location: str, roots: tuple[Path, ...]) -> LocalTarget | None:
    path = parse_local_location(location)
    return None if path is None else LocalTarget(path, roots)
