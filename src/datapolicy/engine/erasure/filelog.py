"""What an erasure's attempts delete of each file source, recorded before each deletion.

A file source has no transaction: a file is gone once deleted, also for the attempt that takes
the erasure over from one that stopped (a lost lease, a hand-back, a failure on a later file).
That successor lists only the files left, so what the stopped attempt deleted must be on
record, or no receipt would count it. So before each deletion the worker stores (renewing its
lease, or stopping if it no longer holds it) the source's lines so far: this attempt's line,
`"partial": true`, with the hash of the file about to go (`pending`), beside the lines of
earlier attempts that did not finish the source either.

The attempt that lists the source next settles each stored `pending`: a file still listed was
not deleted (this attempt deletes it, in its own line); a file no longer listed was, by the
stopped attempt, and is quoted as a line of its own. The attempt that finishes the source
stores those settled lines with its own line as the source's committed lines.

The lines hold the hashes themselves (`keys`) up to PARTIAL_KEYS files, beyond that their count
and SHA-256 only, as a source committed by an earlier attempt is quoted (receipt.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from datapolicy.engine.erasure.receipt import KeyHashes, key_hash
from datapolicy.engine.erasure.run import FilesResult

PARTIAL_KEYS = 1000
Lines = list[dict[str, Any]]


class FileDeletions:
    """This attempt's record of the file sources it deletes from. `earlier`: each file source's
    lines stored by attempts that did not finish it; `record(source, lines)` stores a source's
    lines before a deletion (and raises, the file not deleted, if it cannot)."""

    def __init__(
        self,
        key: bytes,
        hashes: KeyHashes,
        earlier: dict[str, Lines],
        record: Callable[[str, Lines], None],
    ):
        self._key = key
        self._hashes = hashes  # this attempt's hashes, as the receipt lists them
        self._earlier = {
            source: [dict(line) for line in lines] for source, lines in earlier.items()
        }
        self._record = record
        self._done: dict[str, list[str]] = {}  # this attempt's deleted files' hashes (a few)
        self._pending: dict[str, str] = {}  # the file each source is deleting now

    def listed(self, source: str, paths: list[str]) -> None:
        """The source's files as this attempt lists them: settle what earlier attempts were
        deleting when they stopped."""
        here = {key_hash(self._key, source, path) for path in paths}
        settled: Lines = []
        for line in self._earlier.get(source, ()):
            pending = line.pop("pending", None)
            if line.get("files"):  # (an attempt that stopped at its first file deleted none)
                settled.append(line)
            if pending is not None and pending not in here:  # gone: that attempt deleted it
                settled.append(_one_file(line, pending))
        self._earlier[source] = settled

    def before_delete(self, files: FilesResult, path: str) -> None:
        """Record the source's lines, with `path` about to be deleted (`files` counts it)."""
        self._settle(files.source)
        pending = key_hash(self._key, files.source, path)
        self._pending[files.source] = pending
        line = {**self.line(files, files.files - 1), "partial": True, "pending": pending}
        self._record(files.source, [*self.settled(files.source), line])

    def committed(self, files: FilesResult) -> Lines:
        """The source's lines once this attempt deleted all its files: the earlier attempts'
        (settled) and this attempt's own, with its hashes while they are few."""
        self._settle(files.source)
        return [*self.settled(files.source), self.line(files, files.files)]

    def settled(self, source: str) -> Lines:
        """The lines of earlier attempts that began the source, settled by `listed`."""
        return list(self._earlier.get(source, ()))

    def line(self, files: FilesResult, deleted: int) -> dict[str, Any]:
        """This attempt's line of the source: `deleted` files, and its hashes' count and
        SHA-256 (and the hashes, while they are few)."""
        count = self._hashes.count(files.source, None)
        line: dict[str, Any] = {
            **files.as_json(),
            "files": deleted,
            "keyCount": count,
            "keysSha256": self._hashes.sha256(files.source, None),
        }
        done = self._done.get(files.source, [])
        if len(done) == count:
            line["keys"] = list(done)
        return {key: value for key, value in line.items() if value is not None}

    def _settle(self, source: str) -> None:
        """The file `source` was deleting is gone (the next one is about to go, or none)."""
        pending = self._pending.pop(source, None)
        if pending is not None:
            done = self._done.setdefault(source, [])
            if len(done) < PARTIAL_KEYS:
                done.append(pending)


def _one_file(line: dict[str, Any], hashed: str) -> dict[str, Any]:
    """The line of the one file an attempt deleted and could not record: `line`'s source."""
    return {
        **{name: line[name] for name in ("source", "rule", "reason") if name in line},
        "files": 1,
        "keyCount": 1,
        "keysSha256": hashlib.sha256(f"{hashed}\n".encode()).hexdigest(),
        "keys": [hashed],
        "partial": True,
    }
