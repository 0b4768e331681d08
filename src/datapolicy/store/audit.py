"""The audit trail: who did what to whose export, when, from where, in an append-only,
hash-chained log (docs/security.md, "Audit trail").

Each entry records an action from a small fixed vocabulary (`AuditAction`), the caller (the
token's subject and client application id, or the worker), the user the export concerns, the
operation, the client's address and the request id. Entries are numbered 1, 2, 3, ... and each
holds the hash of the one before it (`previous_hash`, sixty-four zeros for entry 1) and its own
`hash`: SHA-256 over `canonical(entry)`, a canonical JSON encoding of all its fields and the
previous hash. One-row `audit_head` holds the last entry's sequence and hash. So changing any
field, deleting, inserting or reordering entries, or deleting entries from the end breaks a link
that `verify` finds, and it names the first broken entry. (Someone able to write the database
can also recompute every hash after their edit: compare the head `verify` reports with a copy
kept elsewhere to catch that.)

Appends are serialised on the head row: the appending transaction locks it (`FOR UPDATE` on
PostgreSQL, where several processes append; on SQLite `BEGIN IMMEDIATE` already holds the write
lock), so every entry links to the one committed before it and the chain never forks. The
migration adds triggers that refuse UPDATE and DELETE on entries and any move of the head but
forward: a guard against accidents, not against the database's owner (`verify` is that).

Where: on PostgreSQL the tables are in the store's database. On SQLite they are in a file of
their own beside the store's (`<store>-audit.sqlite3`, `open_audit_log`): the GET-by-id read
cache (web/readcache.py) is emptied by every commit to the store's file, and read entries are
committed a few times a second under load. That file is migrated with the store's revisions,
so it also holds an (unused, empty) operations table, and the store's file an unused audit
log; the tables used are the ones named here.

`AuditLog.record` appends at once (mutations: the entry is committed before the response is
sent); `AuditBuffer` collects entries (reads and lists, the hot path) and appends them in
batches from a thread, every `flush_seconds` or `max_pending` entries and when closed: a hard
crash loses at most that interval's read entries.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import chain
from typing import Any, NamedTuple

import orjson
from sqlalchemy import ColumnElement, bindparam, select

from datapolicy.model import utc_now
from datapolicy.store.database import Database, SQLiteDatabase, Transaction
from datapolicy.store.operations import from_micros
from datapolicy.store.tables import AUDIT_STARTED, audit_head, audit_log

logger = logging.getLogger(__name__)

GENESIS = "0" * 64  # the previous hash of entry 1
WORKER_SUBJECT = "datapolicy-worker"  # the actor of what the export engine does by itself
_VERIFY_BATCH = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_CHUNK_SIZES = (256, 64, 16, 4, 1)  # rows per INSERT statement, largest first
_NAMES = tuple(column.name for column in audit_log.columns)


class AuditAction(StrEnum):
    """Every action the trail records: the one vocabulary (docs/security.md lists it too)."""

    OPERATION_STARTED = "operation.started"  # POST: a new export was queued
    OPERATION_READ = "operation.read"  # GET by id (and a repeated start answered from its key)
    OPERATION_LISTED = "operation.listed"  # GET the collection or its $count
    OPERATION_UPDATED = "operation.updated"  # PATCH that changed the operation
    OPERATION_DELETED = "operation.deleted"  # DELETE: the export is cancelled or removed
    PACKAGE_PUBLISHED = "package.published"  # a worker published the package
    PACKAGE_DELETED = "package.deleted"  # its operation was deleted, or retention expired it
    PACKAGE_DOWNLOADED = "package.downloaded"  # GET .../package handed the package out
    USER_READ = "user.read"  # GET /users or /users/{id}
    ACCESS_DENIED = "access.denied"  # 403: a valid token without the route's permission


class AuditRecord(NamedTuple):
    """What happened: an entry before it has its place in the chain. (A named tuple: made on
    the event loop for every read, where a frozen dataclass costs several times as much.)"""

    action: AuditAction
    subject: str
    at: datetime
    app_id: str | None = None
    user_id: str | None = None
    operation_id: str | None = None
    client: str | None = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An entry of the chain."""

    sequence: int
    record: AuditRecord
    previous_hash: str
    hash: str

    def as_json(self) -> dict[str, Any]:
        record = self.record._asdict()
        return {
            "sequence": self.sequence,
            **{_JSON_NAMES[name]: value for name, value in record.items()},
            "at": self.record.at.isoformat().replace("+00:00", "Z"),
            "previousHash": self.previous_hash,
            "hash": self.hash,
        }


_JSON_NAMES = {
    "action": "action",
    "subject": "subject",
    "at": "at",
    "app_id": "appId",
    "user_id": "userId",
    "operation_id": "operationId",
    "client": "client",
    "request_id": "requestId",
}


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which entries `AuditLog.entries` returns; None matches anything."""

    user_id: str | None = None
    subject: str | None = None
    action: AuditAction | None = None
    operation_id: str | None = None
    since: datetime | None = None  # at or after
    until: datetime | None = None  # before
    limit: int | None = None  # the newest this many


@dataclass(frozen=True, slots=True)
class Verification:
    """What `verify` found: `problem` is None when the chain is intact."""

    entries: int  # how many entries were checked
    head_hash: str  # the last entry's hash (the genesis hash when there are none)
    broken_at: int | None = None  # the sequence of the first bad entry
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _micros(at: datetime) -> int:
    """Microseconds since the epoch, as the store's `to_micros`, at a fraction of its cost (it
    runs twice for every entry appended)."""
    return (at - _EPOCH) // _MICROSECOND


def canonical(sequence: int, record: AuditRecord, previous_hash: str) -> bytes:
    """The bytes an entry's hash is taken over: JSON in UTF-8 with sorted keys, no spaces, no
    escapes beyond JSON's required ones (orjson's output), times as integer microseconds since
    the epoch (UTC)."""
    return _canonical(sequence, record, _micros(record.at), previous_hash)


def _canonical(sequence: int, record: AuditRecord, at: int, previous_hash: str) -> bytes:
    """`canonical`, with the time already in microseconds (appending needs them for the row
    too). The keys are written in sorted order, so orjson need not sort them."""
    return orjson.dumps(
        {
            "action": str(record.action),
            "appId": record.app_id,
            "at": at,
            "client": record.client,
            "operationId": record.operation_id,
            "previousHash": previous_hash,
            "requestId": record.request_id,
            "sequence": sequence,
            "subject": record.subject,
            "userId": record.user_id,
        }
    )


def entry_hash(sequence: int, record: AuditRecord, previous_hash: str) -> str:
    return hashlib.sha256(canonical(sequence, record, previous_hash)).hexdigest()


def open_audit_log(database: Database, clock: Callable[[], datetime] = utc_now) -> AuditLog:
    """The audit trail of the store in `database` (migrated): in that database, except on
    SQLite, where it is a file beside the store's, opened and migrated here and closed by
    `AuditLog.close` (see the module's docstring)."""
    if not isinstance(database, SQLiteDatabase):
        return AuditLog(database, clock)
    path = database.path
    own = SQLiteDatabase(path.with_name(f"{path.stem}-audit{path.suffix or '.sqlite3'}"))
    own.migrate()
    return AuditLog(own, clock, owns_database=True)


_COLUMNS = (
    audit_log.c.sequence,
    audit_log.c.action,
    audit_log.c.subject,
    audit_log.c.at,
    audit_log.c.app_id,
    audit_log.c.user_id,
    audit_log.c.operation_id,
    audit_log.c.client,
    audit_log.c.request_id,
    audit_log.c.previous_hash,
    audit_log.c.hash,
)
_HEAD = select(audit_head.c.sequence, audit_head.c.hash).where(audit_head.c.id == 1)


def _to_entry(row: tuple[Any, ...]) -> AuditEntry:
    sequence, action, subject, at, app_id, user_id, operation_id, client, request_id = row[:9]
    record = AuditRecord(
        action=_action(action),
        subject=subject,
        at=from_micros(at),
        app_id=app_id,
        user_id=user_id,
        operation_id=operation_id,
        client=client,
        request_id=request_id,
    )
    return AuditEntry(sequence, record, previous_hash=row[9], hash=row[10])


def _action(value: str) -> AuditAction:
    """The stored action; a value outside the vocabulary is kept as it is (as a plain string
    subclass), so `verify` reports the hash that no longer matches rather than failing."""
    try:
        return AuditAction(value)
    except ValueError:
        return value  # type: ignore[return-value]


class AuditLog:
    """The trail in a migrated database; `open_audit_log` opens the store's."""

    def __init__(
        self,
        database: Database,
        clock: Callable[[], datetime] = utc_now,
        *,
        owns_database: bool = False,
    ):
        self.database = database
        self.clock = clock
        self._owns_database = owns_database
        self._inserts: dict[int, str] = {}  # rows -> the compiled INSERT of that many
        self._head_update: str | None = None

    def close(self) -> None:
        """Close the database if it is the trail's own (SQLite's separate file)."""
        if self._owns_database:
            self.database.close()

    def record(
        self,
        action: AuditAction,
        *,
        subject: str = WORKER_SUBJECT,
        app_id: str | None = None,
        user_id: str | None = None,
        operation_id: str | None = None,
        client: str | None = None,
        request_id: str | None = None,
        at: datetime | None = None,
    ) -> AuditEntry:
        """Append one entry now (committed when this returns); the actor defaults to the
        worker, for what the engine does by itself (publishing, deleting packages)."""
        record = AuditRecord(
            action=AuditAction(action),
            subject=subject,
            at=at or self.clock(),
            app_id=app_id,
            user_id=user_id,
            operation_id=operation_id,
            client=client,
            request_id=request_id,
        )
        return self.append([record])[0]

    def append(self, records: Sequence[AuditRecord]) -> list[AuditEntry]:
        """Append entries in one transaction, in order, after the chain's current head."""
        if not records:
            return []
        with self.database.transaction() as transaction:
            head = transaction.fetch_one(_HEAD.with_for_update())
            if head is None:
                raise RuntimeError("the audit log has no head row: is it migrated?")
            sequence, previous = head
            entries, rows = [], []
            for record in records:
                sequence += 1
                at = _micros(record.at)
                digest = hashlib.sha256(_canonical(sequence, record, at, previous)).hexdigest()
                entries.append(AuditEntry(sequence, record, previous, digest))
                rows.append(_row(sequence, record, at, previous, digest))
                previous = digest
            self._insert(transaction, rows)
            transaction.execute_compiled(self._head_sql(), (sequence, previous, 1))
        return entries

    def _insert(self, transaction: Transaction, rows: list[tuple[Any, ...]]) -> None:
        """Insert rows in a few multi-row statements, not one per row: on SQLite every
        statement's step releases the GIL, and in the API process each release may hand it to
        another thread and wait to get it back (web/readcache.py), so a batch of 500 costs
        about eight such hand-offs, not 500. Parameters are positional: `sqlite3` binds a
        statement's hundreds of named ones over ten times slower. Statements of _CHUNK_SIZES
        rows are compiled once per log."""
        position = 0
        for size in _CHUNK_SIZES:
            sql = None
            while len(rows) - position >= size:
                sql = sql or self._insert_sql(size)
                chunk = rows[position : position + size]
                transaction.execute_compiled(sql, list(chain.from_iterable(chunk)))
                position += size

    def _head_sql(self) -> str:
        """The head's move to the new last entry, compiled once per log: (sequence, hash, 1)."""
        if self._head_update is None:
            statement = (
                audit_head.update()
                .where(audit_head.c.id == bindparam("id"))
                .values(sequence=bindparam("sequence"), hash=bindparam("hash"))
            )
            sql, order = self.database.compile_positional(statement)
            assert order == ["sequence", "hash", "id"], order
            self._head_update = sql
        return self._head_update

    def _insert_sql(self, size: int) -> str:
        sql = self._inserts.get(size)
        if sql is None:
            statement = audit_log.insert().values(
                [{name: bindparam(f"{name}_{index}") for name in _NAMES} for index in range(size)]
            )
            sql, order = self.database.compile_positional(statement)
            # The parameters go row by row, each row's in _NAMES order.
            assert order == [f"{name}_{index}" for index in range(size) for name in _NAMES]
            self._inserts[size] = sql
        return sql

    def entries(self, filters: AuditFilter = AuditFilter()) -> list[AuditEntry]:
        """Matching entries, oldest first (with `limit`, the newest that many)."""
        conditions: list[ColumnElement[bool]] = []
        for column, value in (
            (audit_log.c.user_id, filters.user_id),
            (audit_log.c.subject, filters.subject),
            (audit_log.c.action, filters.action and str(filters.action)),
            (audit_log.c.operation_id, filters.operation_id),
        ):
            if value is not None:
                conditions.append(column == value)
        if filters.since is not None:
            conditions.append(audit_log.c.at >= _micros(filters.since))
        if filters.until is not None:
            conditions.append(audit_log.c.at < _micros(filters.until))
        statement = select(*_COLUMNS).where(*conditions).order_by(audit_log.c.sequence.desc())
        if filters.limit is not None:
            statement = statement.limit(filters.limit)
        return [_to_entry(row) for row in reversed(self.database.fetch_all(statement))]

    def request_of_start(self, operation_id: str) -> str | None:
        """The request id of the request that started an operation, if it was recorded: what
        the engine's own entries about the operation carry, to tie them to that request.
        (Served by the partial index of starts: the condition is AUDIT_STARTED, literally.)"""
        rows = self.database.fetch_all(
            select(audit_log.c.request_id)
            .where(audit_log.c.operation_id == operation_id, AUDIT_STARTED)
            .limit(1)
        )
        return rows[0][0] if rows else None

    def verify(self) -> Verification:
        """Check every link of the chain and the head; stop at the first bad entry."""
        expected, previous, count = 1, GENESIS, 0
        for entry in self._all():
            problem = _problem(entry, expected, previous)
            if problem is not None:
                return Verification(count, previous, entry.sequence, problem)
            expected, previous, count = expected + 1, entry.hash, count + 1
        head = self.database.fetch_all(_HEAD)
        if not head:
            return Verification(count, previous, count + 1, "the chain's head row is missing")
        head_sequence, head_hash = head[0]
        if head_sequence > count:
            problem = (
                f"entries {count + 1} to {head_sequence} are missing from the end "
                f"(the chain's head records entry {head_sequence})"
            )
            return Verification(count, previous, count + 1, problem)
        if head_sequence < count:
            problem = f"entry {head_sequence + 1} and after were added behind the chain's head"
            return Verification(count, previous, head_sequence + 1, problem)
        if head_hash != previous:
            problem = "it is not the entry the chain's head records (it was replaced)"
            return Verification(count, previous, count, problem)
        return Verification(count, previous)

    def _all(self) -> Iterator[AuditEntry]:
        """Every entry in sequence order, read in batches (the log may be long)."""
        after = 0
        while True:
            rows = self.database.fetch_all(
                select(*_COLUMNS)
                .where(audit_log.c.sequence > after)
                .order_by(audit_log.c.sequence)
                .limit(_VERIFY_BATCH)
            )
            for row in rows:
                yield _to_entry(row)
            if len(rows) < _VERIFY_BATCH:
                return
            after = rows[-1][0]


def _problem(entry: AuditEntry, expected: int, previous: str) -> str | None:
    if entry.sequence != expected:
        what = "missing" if entry.sequence > expected else "out of order"
        return f"expected entry {expected} here, found entry {entry.sequence} (entries {what})"
    if entry.previous_hash != previous:
        return "its previous hash is not the hash of the entry before it"
    if entry_hash(entry.sequence, entry.record, entry.previous_hash) != entry.hash:
        return "its hash does not match its contents (the entry was changed)"
    return None


def _row(
    sequence: int, record: AuditRecord, at: int, previous_hash: str, digest: str
) -> tuple[Any, ...]:
    """An entry's column values, in the order of `_NAMES` (the table's columns)."""
    return (
        sequence,
        at,
        str(record.action),
        record.subject,
        record.app_id,
        record.user_id,
        record.operation_id,
        record.client,
        record.request_id,
        previous_hash,
        digest,
    )


class AuditBuffer:
    """Entries appended in batches from a thread of its own: for the hot path (reads), where a
    commit per request would cost the request a write and empty the read cache each time.

    `add` only takes a lock and appends to a list. The thread appends what has gathered every
    `flush_seconds`, or sooner when `max_pending` are waiting; `close` appends the rest. If an
    append fails (the database is down), the entries are kept and tried again, up to
    `max_kept`; beyond that the oldest are dropped, with an error in the log."""

    def __init__(
        self,
        log: AuditLog,
        *,
        flush_seconds: float = 0.2,
        max_pending: int = 500,
        max_kept: int = 100_000,
    ):
        self.log = log
        self.flush_seconds = flush_seconds
        self.max_pending = max_pending
        self.max_kept = max_kept
        self._pending: list[AuditRecord] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-buffer", daemon=True)
        self._thread.start()

    def add(self, record: AuditRecord) -> None:
        with self._lock:
            self._pending.append(record)
            if len(self._pending) >= self.max_pending:
                self._wake.set()

    def flush(self) -> None:
        """Append everything gathered so far (in the calling thread)."""
        with self._lock:
            records, self._pending = self._pending, []
        if not records:
            return
        try:
            self.log.append(records)
        except Exception:
            logger.exception("could not append %d audit entries; keeping them", len(records))
            with self._lock:
                self._pending[:0] = records
                excess = len(self._pending) - self.max_kept
                if excess > 0:
                    del self._pending[:excess]
                    logger.error("dropped %d audit entries that could not be appended", excess)
            raise

    def close(self) -> None:
        """Stop the thread and append what is left."""
        self._closed.set()
        self._wake.set()
        self._thread.join()
        self.flush()

    def _run(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except Exception:
                self._closed.wait(self.flush_seconds)  # logged by flush; try again later
