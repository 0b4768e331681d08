"""The Source seam: where a person's data is read from.

A source turns a user id into a stream of *parts*: record streams (a table or a query, read in
batches that the source encodes as JSON Lines: see `jsonlines.py`) and files (opened one at a
time). It never loads a whole table or file into memory, and
it knows nothing of packages, storage or HTTP. Before exporting, the engine asks each source for
an `Estimate` of the work, against which progress is measured.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Protocol

from datapolicy.engine.sources.jsonlines import JsonLines
from datapolicy.errors import ExportError


@dataclass(frozen=True, slots=True)
class Estimate:
    records: int = 0
    bytes: int = 0

    def __add__(self, other: Estimate) -> Estimate:
        return Estimate(self.records + other.records, self.bytes + other.bytes)


@dataclass(frozen=True, slots=True)
class RecordStream:
    """One table or query: its records in batches, each batch already JSON Lines."""

    name: str
    batches: Iterator[JsonLines]


class FileOpener(Protocol):
    def __call__(self) -> IO[bytes]: ...


@dataclass(frozen=True, slots=True)
class FileItem:
    """One file, by its path inside the source (forward slashes) and a way to open it."""

    relative_path: str
    size: int
    open: FileOpener


Part = RecordStream | FileItem


class SourceError(ExportError):
    """A source cannot be read (unreachable database, missing table, unreadable file).

    The message says which source and what went wrong, without credentials. `permanent`: the
    source refused what was asked of it (a table or column that does not exist, a query it
    cannot run, a permission it does not give), so another attempt would fail the same way;
    the worker fails the operation at once instead of retrying it after backoff."""


class Source(ABC):
    kind: str

    def __init__(self, name: str):
        self.name = name

    @abstractmethod
    def estimate(self, user_id: str) -> Estimate:
        """How much this source holds for the user (may be approximate)."""

    @abstractmethod
    def parts(self, user_id: str) -> Iterator[Part]:
        """The user's data, as record streams and files, read lazily."""

    def check(self) -> None:  # noqa: B027 - an optional hook
        """Connect and check the configuration against reality (tables and columns exist)."""

    def close(self) -> None:  # noqa: B027 - an optional hook
        """Release connections."""
