"""Package entry names that every extractor reads the same way.

A file source hands over names as the file system has them, and POSIX allows any byte but `/`
and NUL: `..\\..\\x` (a path on Windows), newlines, U+202E (which shows `exe.txt` as `txt.exe`),
bytes that are not UTF-8. Written raw, such a name escapes the extraction directory or misleads
the person reading it. So each name is made safe, part by part, and unique, and the package's
manifest keeps the original beside it (package.py, docs/package-format.md).

A name is safe when, split at `/`, no part is empty or made of dots only (also after NFKC,
which some tools apply: two U+FF0E FULLWIDTH FULL STOPs are `..` then), and no character is a
control, format (bidi), surrogate, private-use or unassigned character, a line or paragraph
separator, `\\` or `:` (a drive or an alternate data stream on Windows), or becomes one of those
under NFKC. Two names are the same entry when they are equal after NFKC and case folding, as
on a case-insensitive file system: the later one gets `~2` (`~3`, ...) before its extension.
`datapolicy verify` refuses a package with any other name, or the same name twice (verify.py).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

_UNSAFE_CHARACTERS = frozenset("\\:/")
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
REPLACEMENT = "_"


def _unsafe_character(character: str) -> bool:
    if character.isascii():
        return character in _UNSAFE_CHARACTERS or not character.isprintable()
    if unicodedata.category(character) in _UNSAFE_CATEGORIES:
        return True
    folded = unicodedata.normalize("NFKC", character)
    return folded != character and any(_unsafe_character(c) for c in folded)


def _only_dots(part: str) -> bool:
    return not unicodedata.normalize("NFKC", part).strip(".")


def unsafe(name: str) -> str | None:
    """Why `name` is not a safe entry name, or None if it is."""
    for part in name.split("/"):
        if _only_dots(part):
            return "an empty, '.' or '..' part (absolute or escaping)"
        if any(_unsafe_character(c) for c in part):
            return "a backslash, colon, control, bidi or other invisible character"
    return None


def key(name: str) -> str:
    """The one entry a name stands for, on any file system."""
    return unicodedata.normalize("NFKC", name).casefold()


def safe_part(part: str) -> str:
    """`part` with each unsafe character replaced, and a part of dots only (or none) too."""
    cleaned = "".join(REPLACEMENT if _unsafe_character(c) else c for c in part)
    return REPLACEMENT * max(1, len(cleaned)) if _only_dots(cleaned) else cleaned


def _numbered(part: str, number: int) -> str:
    stem, dot, extension = part.rpartition(".")
    if not stem:  # no extension, or a name like ".profile"
        return f"{part}~{number}"
    return f"{stem}~{number}{dot}{extension}"


class EntryNames:
    """Hands out safe, unique entry names for paths given as their original parts. Folders
    keep one name for every file in them, and a file never takes a folder's name or the
    reverse. The same paths in the same order always get the same names."""

    def __init__(self, reserved: Iterable[str] = ()):
        self._taken = {key(name) for name in reserved}
        self._folders: dict[tuple[str, ...], str] = {}

    def allocate(self, parts: Sequence[str]) -> str:
        parent = ""
        for depth in range(1, len(parts)):
            folder = self._folders.get(tuple(parts[:depth]))
            if folder is None:
                folder = self._folders[tuple(parts[:depth])] = self._take(parent, parts[depth - 1])
            parent = f"{folder}/"
        return self._take(parent, parts[-1])

    def _take(self, parent: str, part: str) -> str:
        cleaned = safe_part(part)
        candidate, number = cleaned, 1
        while key(f"{parent}{candidate}") in self._taken:
            number += 1
            candidate = _numbered(cleaned, number)
        name = f"{parent}{candidate}"
        self._taken.add(key(name))
        return name
