"""File sources: a directory per person, from a template such as `/srv/uploads/{userId}/`,
copied whole.

Only regular files are copied. Symbolic links are skipped, not followed: a link inside a
person's directory could otherwise pull someone else's files into their package.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from datapolicy.config import FileSourceConfig
from datapolicy.engine.sources.base import Estimate, FileItem, Part, Source, SourceError

_SEGMENT = re.compile(r"^[^/\\\x00]+$")


class FileSource(Source):
    kind = "files"

    def __init__(self, config: FileSourceConfig):
        super().__init__(config.name)
        self.template = config.path

    def directory(self, user_id: str) -> Path:
        if not _SEGMENT.match(user_id) or user_id in (".", ".."):
            raise SourceError(f"source '{self.name}': the user id cannot name a directory safely")
        return Path(self.template.replace("{userId}", user_id))

    def _files(self, user_id: str) -> Iterator[tuple[Path, str, int]]:
        root = self.directory(user_id)
        if not root.is_dir():
            return
        for folder, subfolders, names in os.walk(root, onerror=self._raise):
            subfolders.sort()
            for name in sorted(names):
                path = Path(folder, name)
                try:
                    status = path.lstat()
                except OSError as exc:
                    self._raise(exc)
                if path.is_symlink() or not path.is_file():
                    continue
                yield path, path.relative_to(root).as_posix(), status.st_size

    def _raise(self, exc: OSError) -> None:
        raise SourceError(
            f"source '{self.name}': cannot read {exc.filename}: {exc.strerror}"
        ) from None

    def estimate(self, user_id: str) -> Estimate:
        files = list(self._files(user_id))
        return Estimate(bytes=sum(size for _, _, size in files))

    def parts(self, user_id: str) -> Iterator[Part]:
        for path, relative, size in self._files(user_id):
            yield FileItem(relative, size, lambda path=path: self._open(path))

    def _open(self, path: Path):
        try:
            return path.open("rb")
        except OSError as exc:
            self._raise(exc)
            raise
