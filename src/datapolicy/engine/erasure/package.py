"""An erasure operation's package: what a dry run would change, or what an erasure did.

Published at the operation's storage location like an export's package (engine/package.py's
writer and manifest, so `datapolicy verify` checks it), with:

- `records/erasure/summary.jsonl`: per table and file source, the rule, the retained ones'
  reasons, and the counts (rows deleted, rows and cells masked, rows or files retained): no
  personal data;
- for a dry run only, `records/<source>/<table>.jsonl`: each row that would be deleted and each
  cell that would be masked, before and after (this is the person's data, as an export is);
- for a complete erasure only, the receipt: `receipt.json` and `receipt.html` (receipt.py),
  listed in the manifest like every entry, and the person named in the manifest (and so in
  `index.html`) by the receipt's hash of their user id alone, not as the user directory names
  them. A dry run's package has no receipt, names the person as an export does, and its
  manifest says `"dryRun": true`: it is not a receipt.

Progress moves per table (and per file source): `run.steps` of them.

A retried erasure resumes: `state` holds the sources committed by earlier attempts with their
summaries, each table's count of key hashes and their SHA-256 (`keysSha256`) included (the
worker stores it with the operation after each commit), and those sources are not erased
again; their lines are the first attempt's. A file source an attempt began and did not finish
is erased again, of the files left, and what that attempt deleted is quoted beside (filelog.py).

Memory stays flat in the number of rows: the receipt's key hashes go to temporary files as
the rows go (receipt.py `KeyHashes`), and so do a dry run's rows and cells (`_Changes`), each
table's then copied into the package.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import IO, Any

from datapolicy.engine.directory import User
from datapolicy.engine.erasure.filelog import FileDeletions
from datapolicy.engine.erasure.masks import Masker
from datapolicy.engine.erasure.receipt import (
    RECEIPT_HTML,
    RECEIPT_JSON,
    KeyHashes,
    build_receipt,
    key_hash,
    principals,
    receipt_json,
    receipt_key,
    render_receipt,
)
from datapolicy.engine.erasure.run import ErasureResult, erase_person, steps
from datapolicy.engine.exporter import Progress
from datapolicy.engine.package import PackageWriter
from datapolicy.engine.sources.base import Estimate, Source
from datapolicy.engine.sources.jsonlines import JsonLines, encode_rows
from datapolicy.model import Operation, format_datetime

SUMMARY_SOURCE = "erasure"
SUMMARY = "summary"
_RECEIPT_ONLY = ("keyColumns", "keyCount", "keysSha256", "keys")  # not in summary.jsonl
CHANGES_BATCH = 1000  # a dry run's details encoded (and spilled) at a time, per table
READ_BYTES = 1024 * 1024  # spilled details copied into the package at a time


def erase_into_package(
    operation: Operation,
    user: User,
    sources: Sequence[Source],
    stream: IO[bytes],
    progress: Progress,
    clock: Callable[[], datetime],
    masker: Masker,
    *,
    dry_run: bool,
    state: dict[str, list[dict[str, Any]]],
    committed: Callable[[str, list[dict[str, Any]]], None],
    approval: dict[str, str] | None = None,
    before_commit: Callable[[], None] = lambda: None,
    partly: Callable[[str, list[dict[str, Any]]], None] = lambda source, lines: None,
    earlier: dict[str, list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Erase the user (or, with `dry_run`, only show what would change) and write the package;
    returns its manifest. `state`: the summary lines of each source committed by an earlier
    attempt; `committed(source, its summary lines)` after each source commits; `approval`:
    who requested and who approved, and when (`requestedBy`, `approvedBy`, `approvedAt`, as
    stored with the operation), spelled out in the manifest (and so the receipt);
    `before_commit`: run/erase_person's; `partly(file source, its lines so far)` before each
    file this attempt deletes, and `earlier`, each file source's lines stored by attempts that
    began it and did not finish: filelog.py."""
    started = clock()
    progress.start(Estimate(records=steps(sources, done=state)))
    key = receipt_key(masker.secret, operation.id)
    hashes = KeyHashes(key)
    changes = _Changes(
        {
            config.table: source.name
            for source in sources
            for config in getattr(getattr(source, "config", None), "tables", ())
        }
    )

    deletions = FileDeletions(key, hashes, earlier or {}, partly)

    def on_commit(source: str, result: ErasureResult) -> None:
        files = [f for f in result.files if f.source == source]
        # A file source's lines as stored: the earlier attempts' and its own, with its hashes
        committed(
            source, deletions.committed(files[0]) if files else _summary_of(result, source, hashes)
        )

    try:
        result = erase_person(
            user.id,
            sources,
            masker,
            dry_run=dry_run,
            done=set(state),
            change=changes.add if dry_run else None,
            committed=on_commit,
            advanced=lambda: progress.advance_steps(1),
            keys=hashes.add,
            hashed=hashes,
            before_commit=before_commit,
            before_delete=deletions.before_delete,
            listed=deletions.listed,
        )
        header = {
            "operationId": operation.id,
            "operationType": operation.operation_type.value,
            "dryRun": dry_run,
            **principals(approval or {}),
            "submittedDateTime": format_datetime(operation.submitted_at),
            "startedDateTime": format_datetime(started),
        }
        # A receipt is kept as proof after the person's data is gone (for years, by default):
        # its package names them as the receipt does, by the hash of their user id only. A dry
        # run's holds their rows anyway, and names them as an export does.
        person = user.as_json() if dry_run else {"idHash": key_hash(key, user.id)}
        writer = PackageWriter(stream, {**header, "user": person}, modified=started)
        try:
            lines = [line for source_lines in state.values() for line in source_lines]
            for name in result.committed:
                lines += deletions.settled(name) + _summary_of(result, name, hashes)
            if dry_run:
                lines = [_line(table.as_json()) for table in result.tables]
                lines += [_line(files.as_json()) for files in result.files]
            summary = [{k: v for k, v in line.items() if k not in _RECEIPT_ONLY} for line in lines]
            writer_source = writer.source(SUMMARY_SOURCE, "erasure")
            for _ in writer.add_records(writer_source, SUMMARY, [encode_rows(summary)]):
                pass
            if not dry_run:
                header.pop("dryRun")
                header["createdDateTime"] = format_datetime(clock())
                receipt = build_receipt(header, key, key_hash(key, user.id), lines)
                writer.add_document(RECEIPT_JSON, receipt_json(receipt, hashes))
                writer.add_document(RECEIPT_HTML, render_receipt(receipt).encode())
            for (source, table), batches in changes.tables():
                for _ in writer.add_records(writer.source(source, "erasure"), table, batches):
                    pass
        except BaseException:
            writer.abandon()
            raise
        return writer.close({"createdDateTime": format_datetime(clock())})
    finally:
        hashes.close()
        changes.close()


class _Changes:
    """A dry run's details (each row that would be deleted, each cell that would be masked),
    per (source, table), encoded a batch at a time into a temporary file of JSON lines."""

    def __init__(self, source_of_table: dict[str, str]):
        self._source_of_table = source_of_table
        self._pending: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._files: dict[tuple[str, str], IO[bytes]] = {}

    def add(self, table: str, detail: dict[str, Any]) -> None:
        where = (self._source_of_table.get(table, table), table)
        pending = self._pending.setdefault(where, [])
        pending.append(detail)
        if len(pending) >= CHANGES_BATCH:
            self._flush(where)

    def _flush(self, where: tuple[str, str]) -> None:
        pending = self._pending.pop(where, [])
        if pending:
            if where not in self._files:
                self._files[where] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close)
            self._files[where].write(encode_rows(pending).data)

    def tables(self) -> Iterator[tuple[tuple[str, str], Iterator[JsonLines]]]:
        """Each table's details, as batches of whole lines read back from its file."""
        for where in list(self._pending):
            self._flush(where)
        for where, spilled in self._files.items():
            yield where, _read_lines(spilled)

    def close(self) -> None:
        for spilled in self._files.values():
            spilled.close()


def _read_lines(spilled: IO[bytes]) -> Iterator[JsonLines]:
    spilled.seek(0)
    while chunk := spilled.read(READ_BYTES):
        chunk += spilled.readline()  # to the end of the line the read stopped in
        yield JsonLines(chunk, chunk.count(b"\n"))


def _summary_of(result: ErasureResult, source: str, hashes: KeyHashes) -> list[dict[str, Any]]:
    """The source's summary lines, each with the count and the SHA-256 of the receipt's hashes
    of the keys of the rows (or the paths of the files) it changed: this attempt's, so each
    table's and file source's hashes (maybe none) go into the receipt."""
    tables: list[str | None] = [t.table for t in result.tables if t.source == source]
    for table in tables + [None for f in result.files if f.source == source]:
        hashes.add(source, table, [])
    lines = [
        _line(
            {
                **t.as_json(),
                "keyColumns": list(t.key) if t.rule != "retain" else None,
                "keyCount": hashes.count(source, t.table),
                "keysSha256": hashes.sha256(source, t.table),
            }
        )
        for t in result.tables
        if t.source == source
    ]
    return lines + [
        _line(
            {
                **f.as_json(),
                "keyCount": hashes.count(source, None),
                "keysSha256": hashes.sha256(source, None),
            }
        )
        for f in result.files
        if f.source == source
    ]


def _line(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}
