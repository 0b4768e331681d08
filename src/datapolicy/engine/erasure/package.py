"""An erasure operation's package: what a dry run would change, or what an erasure did.

Published at the operation's storage location like an export's package (engine/package.py's
writer and manifest, so `datapolicy verify` checks it), with:

- `records/erasure/summary.jsonl`: per table and file source, the rule, the retained ones'
  reasons, and the counts (rows deleted, rows and cells masked, rows or files retained): no
  personal data;
- for a dry run only, `records/<source>/<table>.jsonl`: each row that would be deleted and each
  cell that would be masked, before and after (this is the person's data, as an export is);
- for a complete erasure only, the receipt: `receipt.json` and `receipt.html` (receipt.py),
  listed in the manifest like every entry. A dry run's package has none, and its manifest says
  `"dryRun": true`: it is not a receipt.

Progress moves per table (and per file source): `run.steps` of them.

A retried erasure resumes: `state` holds the sources committed by earlier attempts with their
summaries, the receipt's key hashes included (the worker stores it with the operation after
each commit), and those sources are not erased again; their lines are the first attempt's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import IO, Any

import orjson

from datapolicy.engine.directory import User
from datapolicy.engine.erasure.masks import Masker
from datapolicy.engine.erasure.receipt import (
    RECEIPT_HTML,
    RECEIPT_JSON,
    build_receipt,
    key_hash,
    receipt_key,
    render_receipt,
)
from datapolicy.engine.erasure.run import ErasureResult, erase_person, steps
from datapolicy.engine.exporter import Progress
from datapolicy.engine.package import PackageWriter
from datapolicy.engine.sources.base import Estimate, Source
from datapolicy.engine.sources.jsonlines import encode_rows
from datapolicy.model import Operation, format_datetime

SUMMARY_SOURCE = "erasure"
SUMMARY = "summary"
_RECEIPT_ONLY = ("keyColumns", "keys")  # in the receipt, not in summary.jsonl


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
) -> dict[str, Any]:
    """Erase the user (or, with `dry_run`, only show what would change) and write the package;
    returns its manifest. `state`: the summary lines of each source committed by an earlier
    attempt; `committed(source, its summary lines)` after each source commits; `approval`:
    who requested and who approved, and when (`requestedBy`, `approvedBy`, `approvedAt`, as
    stored with the operation), copied into the manifest."""
    started = clock()
    progress.start(Estimate(records=steps(sources, done=state)))
    key = receipt_key(masker.secret, operation.id)
    changes: dict[tuple[str, str], list[dict[str, Any]]] = {}
    source_of_table = {
        config.table: source.name
        for source in sources
        for config in getattr(getattr(source, "config", None), "tables", ())
    }

    def change(table: str, detail: dict[str, Any]) -> None:
        changes.setdefault((source_of_table.get(table, table), table), []).append(detail)

    def on_commit(source: str, result: ErasureResult) -> None:
        committed(source, _summary_of(result, source, key))

    result = erase_person(
        user.id,
        sources,
        masker,
        dry_run=dry_run,
        done=set(state),
        change=change if dry_run else None,
        committed=on_commit,
        advanced=lambda: progress.advance(records=1),
    )
    header = {
        "operationId": operation.id,
        "operationType": operation.operation_type.value,
        "dryRun": dry_run,
        **(approval or {}),
        "submittedDateTime": format_datetime(operation.submitted_at),
        "startedDateTime": format_datetime(started),
    }
    writer = PackageWriter(stream, {**header, "user": user.as_json()}, modified=started)
    try:
        lines = [line for lines in state.values() for line in lines]
        lines += [line for source in result.committed for line in _summary_of(result, source, key)]
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
            receipt = build_receipt(header, key_hash(key, user.id), lines)
            writer.add_document(RECEIPT_JSON, orjson.dumps(receipt, option=orjson.OPT_INDENT_2))
            writer.add_document(RECEIPT_HTML, render_receipt(receipt).encode())
        for (source, table), details in changes.items():
            for _ in writer.add_records(
                writer.source(source, "erasure"), table, [encode_rows(details)]
            ):
                pass
    except BaseException:
        writer.abandon()
        raise
    return writer.close({"createdDateTime": format_datetime(clock())})


def _summary_of(result: ErasureResult, source: str, key: bytes) -> list[dict[str, Any]]:
    """The source's summary lines, each with the receipt's hashes of the keys of the rows (or
    the paths of the files) it changed."""
    lines = [
        _line(
            {
                **t.as_json(),
                "keyColumns": list(t.key) if t.rule != "retain" else None,
                "keys": [key_hash(key, source, t.table, *k) for k in t.keys],
            }
        )
        for t in result.tables
        if t.source == source
    ]
    return lines + [
        _line({**f.as_json(), "keys": [key_hash(key, source, path) for path in f.paths]})
        for f in result.files
        if f.source == source
    ]


def _line(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}
