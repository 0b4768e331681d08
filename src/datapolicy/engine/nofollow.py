"""Directories opened one component at a time, never through a symbolic link.

A path checked and then opened by name can be redirected between the two by swapping a
component for a symlink. Opening each component relative to its parent's descriptor with
`O_NOFOLLOW` (openat(2); Python exposes no `openat2(RESOLVE_NO_SYMLINKS)`) leaves no such gap:
a component that is a link, or no longer a directory, fails the open. `O_DIRECTORY` also means
a FIFO swapped in is refused rather than blocking the open. The local target writes through it
(targets/local.py) and file sources read through it (sources/files.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


def open_directory(descriptor: int, parts: Iterable[str]) -> int:
    """A new descriptor for the directory `parts` below the one open as `descriptor` (which
    stays open; the caller closes the result). Each part is a single name, never `..`: OSError
    if a part is missing, a symlink, or not a directory."""
    current = os.dup(descriptor)
    try:
        for part in parts:
            if part in ("", ".", "..") or "/" in part:
                raise OSError(f"not a single directory name: {part!r}")
            inner = os.open(part, DIRECTORY, dir_fd=current)
            os.close(current)
            current = inner
    except BaseException:
        os.close(current)
        raise
    return current
