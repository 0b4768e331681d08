"""Erase one person from every source: SQL sources first, each in its own transaction, then the
file sources, whose files go only once every database has committed (a database that fails
leaves the files, which an export still shows, rather than files gone and rows kept).

Each source that commits is reported (`committed`) as it does, so that the caller can record
it: a retry passes those back (`done`) and they are not erased again. Erasing again would
change nothing either (every rule is idempotent: engine/erasure/sql.py, masks.py), but the
counts the receipt quotes are the first run's. A source that fails raises `ErasureFailed`,
naming it and the sources already committed; the sources after it are not touched.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from datapolicy.engine.erasure.masks import Masker
from datapolicy.engine.erasure.sql import Change, HashedKeys, SqlEraser, TableResult
from datapolicy.engine.sources.base import Source, SourceError
from datapolicy.engine.sources.files import FileSource
from datapolicy.engine.sources.sql import SqlSource

# (source, table, keys of a batch of rows changed) or (source, None, [(path,)]) for a file deleted
SourceKeys = Callable[[str, str | None, Sequence[Sequence[Any]]], None]


class ErasureFailed(SourceError):
    """A source failed mid-erasure: the message names it and what was already committed."""


@dataclass(slots=True)
class FilesResult:
    source: str
    rule: str  # delete or retain
    reason: str | None
    files: int = 0  # files deleted (or, in a dry run, that would be), or retained

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rule": self.rule,
            "reason": self.reason,
            "files": self.files,
        }


@dataclass(slots=True)
class ErasureResult:
    tables: list[TableResult] = field(default_factory=list)
    files: list[FilesResult] = field(default_factory=list)
    committed: list[str] = field(default_factory=list)  # sources, in the order they committed


def erase_person(
    user_id: str,
    sources: Sequence[Source],
    masker: Masker,
    *,
    dry_run: bool,
    done: Collection[str] = (),
    change: Change | None = None,
    committed: Callable[[str, ErasureResult], None] | None = None,
    advanced: Callable[[], None] = lambda: None,
    keys: SourceKeys | None = None,
    hashed: HashedKeys | None = None,
    before_commit: Callable[[], None] = lambda: None,
    before_delete: Callable[[FilesResult, str], None] = lambda files, path: None,
    listed: Callable[[str, list[str]], None] = lambda source, paths: None,
) -> ErasureResult:
    """Erase (or, with `dry_run`, show what would be erased of) the person in every source not
    in `done`; `committed(source, result so far)` after each source commits (never in a dry
    run); `change` receives each row deleted and each cell masked (SqlEraser.erase);
    `advanced()` after each table (`steps` counts them) and each file source; `keys` receives
    the keys of the rows (and the paths of the files) erased, in batches, as they go (never in
    a dry run): the receipt's, not held here; or, where a database computes their hashes, to
    `hashed` as hashes (SqlEraser.erase). `before_commit()` before each SQL source's commit,
    `before_delete(the file source's result, counting this file, its path)` before each file's
    deletion (never in a dry run): what they raise stops the erasure with that change not made
    (the worker's check that its lease is still held, and its record of what is about to go:
    a file source has no transaction, each file is gone once deleted: filelog.py);
    `listed(source, paths)` once a file source's files to delete are listed. A file source's
    `committed` comes before its `advanced()`, which may stop the attempt (a hand-back) once
    every file is gone."""
    result = ErasureResult()
    ordered = [s for s in sources if isinstance(s, SqlSource)] + [
        s for s in sources if isinstance(s, FileSource)
    ]
    for source in ordered:
        if source.name in done:
            continue

        def sink(
            table: str | None, batch: Sequence[Sequence[Any]], name: str = source.name
        ) -> None:
            if keys is not None and not dry_run:
                keys(name, table, batch)

        try:
            if isinstance(source, SqlSource):
                eraser = SqlEraser(source)
                result.tables += eraser.erase(
                    user_id,
                    masker,
                    dry_run=dry_run,
                    change=change,
                    advanced=advanced,
                    keys=sink,
                    hashed=None if dry_run else hashed,
                    before_commit=before_commit,
                )
            else:
                result.files.append(
                    _erase_files(source, user_id, dry_run, change, sink, before_delete, listed)
                )
        except SourceError as exc:
            already = ", ".join(f"'{name}'" for name in (*done, *result.committed)) or "none"
            raise ErasureFailed(
                f"erasure failed in source '{source.name}': {exc}; sources already erased and "
                f"committed: {already}; no other source was changed",
                permanent=exc.permanent,
            ) from None
        if not dry_run:
            result.committed.append(source.name)
            if committed is not None:
                committed(source.name, result)
        if isinstance(source, FileSource):
            advanced()
    return result


def _erase_files(
    source: FileSource,
    user_id: str,
    dry_run: bool,
    change: Change | None,
    keys: Callable[[str | None, Sequence[Sequence[Any]]], None],
    before_delete: Callable[[FilesResult, str], None],
    listed: Callable[[str, list[str]], None],
) -> FilesResult:
    rule = source.config.erase or "retain"
    result = FilesResult(source.name, rule, source.config.reason)
    files = list(source.files(user_id))
    if rule == "delete" and not dry_run:
        listed(source.name, [relative for relative, _ in files])
    for relative, size in files:
        result.files += 1
        if rule != "delete":
            continue
        if change is not None:
            change(source.name, {"deleteFile": {"path": relative, "size": size}})
        if not dry_run:
            before_delete(result, relative)
            source.delete(user_id, relative)
            keys(None, [(relative,)])
    return result


def steps(sources: Sequence[Source], done: Collection[str] = ()) -> int:
    """How many times `erase_person` calls `advanced`: once per table of each SQL source (each
    physical table once) and once per file source, of the sources not in `done`."""
    return sum(
        len({config.table for config in source.config.tables})
        if isinstance(source, SqlSource)
        else 1
        for source in sources
        if source.name not in done and isinstance(source, SqlSource | FileSource)
    )
