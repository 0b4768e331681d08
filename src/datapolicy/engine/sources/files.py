"""File sources: a directory per person, from a template such as `/srv/uploads/{userId}/`,
copied whole.

The template's directories above the first one naming `{userId}` are the operator's and are
opened as configured, links and all. Everything from the person's directory down is opened one
component at a time relative to its parent's descriptor, never through a symbolic link
(`engine/nofollow.py`), both when listing and again when each file is opened for copying: a
file or directory swapped for a link in between fails the open instead of pulling someone
else's file into the package. So:

- a person's directory that is itself a symlink (or not a directory) is refused: the export
  fails with a message naming it;
- symbolic links inside it are skipped, not followed, and so are FIFOs, sockets and devices;
- a regular file with more than one hard link is refused: another name for the same file may be
  in another person's directory, and nothing in the file says whose it is (docs/security.md);
- a file that changed kind after it was listed (now a link, a directory, gone) fails the export,
  which the worker retries from a fresh listing.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, NoReturn

from datapolicy.config import FileSourceConfig
from datapolicy.engine.nofollow import open_directory
from datapolicy.engine.sources.base import Estimate, FileItem, Part, Source, SourceError

_SEGMENT = re.compile(r"^[^/\\\x00]+$")
_USER = "{userId}"
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK  # NONBLOCK: a FIFO swapped in never blocks


class FileSource(Source):
    kind = "files"

    def __init__(self, config: FileSourceConfig):
        super().__init__(config.name)
        self.config = config
        self.template = config.path

    @property
    def base(self) -> Path:
        """The operator's directory: the template's directories above the first naming
        {userId}. If it does not exist, no person has files here (`config check` warns)."""
        parts = Path(self.template).parts
        first = next(i for i, part in enumerate(parts) if _USER in part)
        return Path(*parts[:first]) if first else Path(".")

    def _split(self, user_id: str) -> tuple[Path, tuple[str, ...]]:
        """The operator's directory, and the person's components below it."""
        if not _SEGMENT.match(user_id) or user_id in (".", ".."):
            raise SourceError(f"source '{self.name}': the user id cannot name a directory safely")
        parts = Path(self.template).parts
        first = next(i for i, part in enumerate(parts) if _USER in part)
        person = tuple(part.replace(_USER, user_id) for part in parts[first:])
        if any(part in (".", "..") for part in person):
            raise SourceError(f"source '{self.name}': '..' below {{userId}} in the path template")
        return self.base, person

    def _open_person(self, user_id: str) -> int | None:
        """A descriptor for the person's directory; None if there is none."""
        base, parts = self._split(user_id)
        try:
            base_descriptor = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._raise(exc)
        try:
            return open_directory(base_descriptor, parts)
        except FileNotFoundError:
            return None
        except OSError as exc:
            path = base.joinpath(*parts)
            if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                raise SourceError(
                    f"source '{self.name}': {path} (or a directory on its way) is a symbolic "
                    "link or not a directory: a person's directory is never read through a link"
                ) from None
            self._raise(exc)
        finally:
            os.close(base_descriptor)

    def files(self, user_id: str) -> Iterator[tuple[str, int]]:
        """Every regular file in the person's directory (sorted, links not followed), by its
        path relative to it, with its size. os.fwalk would do, but it opens each subdirectory
        through a link (and then compares) and without O_NONBLOCK, so a directory swapped for
        a link to a FIFO would hang it; and it recurses, as deep as the tree."""
        person = self._open_person(user_id)
        if person is None:
            return
        descriptors = [person]  # one open directory per level below the person's ...
        levels: list[tuple[tuple[str, ...], Iterator[os.DirEntry[str]]]] = []  # ... its entries
        try:
            levels.append(((), self._listing(person, ())))
            while levels:
                where, entries = levels[-1]
                entry = next(entries, None)
                if entry is None:
                    levels.pop()
                    os.close(descriptors.pop())
                    continue
                path = (*where, entry.name)
                status = self._lstat(entry, path)
                if stat.S_ISDIR(status.st_mode):
                    descriptors.append(self._open_folder(descriptors[-1], path))
                    levels.append((path, self._listing(descriptors[-1], path)))
                elif stat.S_ISREG(status.st_mode):
                    self._refuse_hard_link("/".join(path), status)
                    yield "/".join(path), status.st_size
        finally:
            for descriptor in descriptors:
                os.close(descriptor)

    def _listing(self, descriptor: int, where: tuple[str, ...]) -> Iterator[os.DirEntry[str]]:
        try:
            with os.scandir(descriptor) as listing:
                return iter(sorted(listing, key=lambda entry: entry.name))
        except OSError as exc:
            self._raise(exc, "/".join(where) or ".")

    def _lstat(self, entry: os.DirEntry[str], where: tuple[str, ...]) -> os.stat_result:
        try:
            return entry.stat(follow_symlinks=False)
        except OSError as exc:
            self._raise(exc, "/".join(where))

    def _open_folder(self, parent: int, where: tuple[str, ...]) -> int:
        try:
            return open_directory(parent, where[-1:])
        except OSError as exc:
            self._raise(exc, "/".join(where))

    def _refuse_hard_link(self, relative: str, status: os.stat_result) -> None:
        if status.st_nlink > 1:
            raise SourceError(
                f"source '{self.name}': {relative!r} has {status.st_nlink} hard links; another "
                "may be in someone else's directory, so it is not copied (copy it to break the "
                "link)"
            )

    def _raise(self, exc: OSError, where: str | None = None) -> NoReturn:
        raise SourceError(
            f"source '{self.name}': cannot read {where or exc.filename}: {exc.strerror or exc}"
        ) from None

    def estimate(self, user_id: str) -> Estimate:
        return Estimate(bytes=sum(size for _, size in self.files(user_id)))

    def parts(self, user_id: str) -> Iterator[Part]:
        for relative, size in self.files(user_id):
            yield FileItem(relative, size, lambda relative=relative: self._open(user_id, relative))

    def delete(self, user_id: str, relative: str) -> None:
        """Unlink one listed file (erasure), reached from the person's directory one component
        at a time without following a link, as `_open` reaches it; a file already gone is
        already erased."""
        person = self._open_person(user_id)
        if person is None:
            return
        *folders, name = relative.split("/")
        try:
            folder = open_directory(person, folders)
            try:
                os.unlink(name, dir_fd=folder)
            finally:
                os.close(folder)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise SourceError(
                f"source '{self.name}': cannot delete {relative!r}: {exc.strerror or exc}"
            ) from None
        finally:
            os.close(person)

    def _open(self, user_id: str, relative: str) -> IO[bytes]:
        """The listed file, opened afresh from the person's directory without following a
        link on the way: still a regular file with one link, or SourceError."""
        person = self._open_person(user_id)
        if person is None:
            raise SourceError(f"source '{self.name}': the person's directory went away")
        *folders, name = relative.split("/")
        try:
            folder = open_directory(person, folders)
            try:
                descriptor = os.open(name, _FILE, dir_fd=folder)
            finally:
                os.close(folder)
        except OSError as exc:
            raise SourceError(
                f"source '{self.name}': {relative!r} changed while it was exported (it or a "
                f"directory on its way is now a symbolic link, or gone: {exc.strerror or exc}); "
                "links are never followed"
            ) from None
        finally:
            os.close(person)
        status = os.fstat(descriptor)
        try:
            if not stat.S_ISREG(status.st_mode):
                raise SourceError(f"source '{self.name}': {relative!r} is no longer a file")
            self._refuse_hard_link(relative, status)
        except SourceError:
            os.close(descriptor)
            raise
        return open(descriptor, "rb")
