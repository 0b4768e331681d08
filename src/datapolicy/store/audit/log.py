"""The audit trail: who did what to whose export, when, from where, in an append-only,
hash-chained log (docs/security.md, "Audit trail").

Each entry records an action from a small fixed vocabulary (`AuditAction`), the caller (the
token's subject and client application id, or the worker), the user the export concerns, the
operation, the client's address and the request id. Entries are numbered 1, 2, 3, ... and the
chain is made of links, each holding the hash of the link before it (`previous_hash`, sixty-four
zeros for the first) and its own `hash`:
- an entry appended on its own (a change, appended before its response is sent) is a link of
  its own, a row of `audit_log`: its hash is SHA-256 over `canonical(entry)`, a canonical JSON
  encoding of all its fields and the previous hash;
- a batch of entries appended together (reads and lists, the hot path, from `AuditBuffer`) is
  one link, a row of `audit_block`: the entries as a JSON array, numbered first..last, with one
  hash over the numbers, the previous hash and the array's bytes (`block_hash`). One row and one
  hash per batch instead of per read is what keeps auditing every GET cheap (docs/benchmarks.md).
One-row `audit_head` holds the last entry's sequence and the last link's hash. So changing any
field, deleting, inserting or reordering entries or blocks breaks a link that `verify` finds,
and it names the first entry of the first broken link.

The head is anchored: every append also writes `audit_checkpoint`, the head's sequence and hash
signed with the service's ES256 audit key (`audit-key.jwk`, auth/keys.py; a JWS, joserfc), in
the same transaction.
Whoever deletes the last entries and moves the head back (the triggers below are no obstacle
to the database's owner) cannot sign the shorter chain's head without the key, which lives in
the data directory, not in the database: `verify` checks the signature with the service's key
and that the chain ends where the checkpoint says. (A checkpoint copied earlier can be put back
with a chain cut back to it; and whoever also holds the key can rewrite everything: compare the
head `verify` reports with a copy kept elsewhere to catch those.) Every process appending to one
trail must hold the same key (they share the data directory, or a copy of `audit-key.jwk`).

Appends are serialised on the head row: the appending transaction locks it (`FOR UPDATE` on
PostgreSQL, where several processes append; on SQLite `BEGIN IMMEDIATE` already holds the write
lock), so every link follows the one committed before it and the chain never forks. The
migrations add triggers that refuse UPDATE and DELETE on entries and blocks and any move of the
head but forward: a guard against accidents, not against the database's owner (`verify` is that).

Where: on PostgreSQL the tables are in the store's database. On SQLite they are in a file of
their own beside the store's (`<store>-audit.sqlite3`, `open_audit_log`): the GET-by-id read
cache (web/readcache.py) is emptied by every commit to the store's file, and read entries are
committed a few times a second under load. That file is migrated with the store's revisions,
so it also holds an (unused, empty) operations table, and the store's file an unused audit
log; the tables used are the ones named here.

The trail fails closed. A change and its entry commit together: the store passes its
transaction (`within`), and on PostgreSQL the entry is written in it, one commit for both; on
SQLite, whose trail is a file of its own, the entry is committed inside the store's transaction,
just before it (the store's write lock is held throughout, so no other change comes between).
An entry that cannot be written raises `AuditUnavailable` (a 503 with Retry-After) and the change
is rolled back. The head's lock is taken last and held for a few statements only, never across
anything that can stall (every caller appends as the last step of its transaction). A process
frozen while holding it (SIGSTOP, a VM pause) loses it on PostgreSQL after `[store]
audit_idle_timeout` (2 s): the appending transaction lowers its own idle timeout before locking
the head, so the server ends the frozen session, and a waiter, which waits up to the longer
`[store] lock_timeout`, then gets the lock and succeeds (store/database.py). On SQLite a frozen
holder keeps the file's write lock until it resumes or exits: writes fail with 503 meanwhile.

`AuditLog.record` appends at once (mutations: the entry is committed before the response is
sent); `AuditBuffer` collects entries (reads and lists, the hot path) and appends them as blocks
from a thread, every `flush_seconds` or `max_pending` entries and when closed: a hard crash
loses at most that interval's read entries.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

import orjson
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from sqlalchemy import ColumnElement, bindparam, select

from datapolicy.errors import Unavailable
from datapolicy.model import utc_now
from datapolicy.store.database import Database, SQLiteDatabase, Transaction
from datapolicy.store.operations import from_micros
from datapolicy.store.tables import (
    AUDIT_STARTED,
    audit_block,
    audit_checkpoint,
    audit_head,
    audit_log,
)

# Where verify reads from: a snapshot of the database, or the database itself.
Reader = Database | Transaction

logger = logging.getLogger(__name__)

GENESIS = "0" * 64  # the previous hash of entry 1
WORKER_SUBJECT = "datapolicy-worker"  # the actor of what the export engine does by itself
_VERIFY_BATCH = 1000
_BLOCK_BATCH = 20  # blocks read at a time (each up to AuditBuffer.max_pending entries)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_NAMES = tuple(column.name for column in audit_log.columns)
_BLOCK_NAMES = [column.name for column in audit_block.columns]
_BLOCK_HASH_PREFIX = b"datapolicy-audit-block"
_CHECKPOINT_ALGORITHM = "ES256"
_UNWRITABLE = "The audit trail cannot be written now, so nothing was changed. Try again later."


class AuditUnavailable(Unavailable):
    """The trail cannot take an entry now (locked past the lock timeout, a full disk, the
    database gone): the change the entry would record is not made (a 503 with Retry-After)."""


class AuditAction(StrEnum):
    """Every action the trail records: the one vocabulary (docs/security.md lists it too)."""

    OPERATION_STARTED = "operation.started"  # POST: a new export was queued
    OPERATION_READ = "operation.read"  # GET by id (and a repeated start answered from its key)
    OPERATION_LISTED = "operation.listed"  # GET the collection or its $count
    OPERATION_UPDATED = "operation.updated"  # PATCH that changed the operation
    OPERATION_DELETED = "operation.deleted"  # DELETE: the export is cancelled or removed
    PACKAGE_PUBLISHED = "package.published"  # a worker published the package
    PACKAGE_DELETED = "package.deleted"  # its operation was deleted, or retention expired it
    # ... but its target refused (a 403, a presigned URL, a location no longer permitted): the
    # package stays where it was published
    PACKAGE_DELETION_REFUSED = "package.deletionRefused"
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


_AFTER_AT = AuditRecord._fields.index("at") + 1  # app_id .. request_id, as columns are ordered


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An entry of the chain."""

    sequence: int
    record: AuditRecord
    previous_hash: str  # the link's: the entry's own, or its block's
    hash: str
    block: int | None = None  # in a block: the block's first sequence

    def as_json(self) -> dict[str, Any]:
        record = self.record._asdict()
        return {
            "sequence": self.sequence,
            **{_JSON_NAMES[name]: value for name, value in record.items()},
            "at": self.record.at.isoformat().replace("+00:00", "Z"),
            "previousHash": self.previous_hash,
            "hash": self.hash,
            "block": self.block,
        }


@dataclass(frozen=True, slots=True)
class AuditBlock:
    """A link of entries appended together (a row of `audit_block`), as stored."""

    first_sequence: int
    last_sequence: int
    first_at: int  # microseconds since the epoch
    last_at: int
    entries: bytes  # the JSON array `encode_block` made
    previous_hash: str
    hash: str

    def records(self) -> list[AuditRecord]:
        """The entries; ValueError if the stored bytes are not a well-formed array of them."""
        return decode_block(self.entries)


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


def block_hash(first: int, last: int, entries: bytes, previous_hash: str) -> str:
    """SHA-256 over `datapolicy-audit-block`, the first and last sequence and the previous
    hash, each followed by a newline, then the block's entries exactly as stored."""
    digest = hashlib.sha256(
        b"%s\n%d\n%d\n%s\n" % (_BLOCK_HASH_PREFIX, first, last, previous_hash.encode())
    )
    digest.update(entries)
    return digest.hexdigest()


def encode_block(records: Sequence[AuditRecord]) -> tuple[bytes, int, int]:
    """A block's entries as stored: a JSON array of [at (integer microseconds since the epoch),
    action, subject, appId, userId, operationId, client, requestId], with the earliest and the
    latest time."""
    rows = [
        [_micros(record.at), str(record.action), record.subject, *record[_AFTER_AT:]]
        for record in records
    ]
    times = [row[0] for row in rows]
    return orjson.dumps(rows), min(times), max(times)


def decode_block(entries: bytes) -> list[AuditRecord]:
    """`encode_block`'s entries back; ValueError if they are not what it writes."""
    try:
        rows = orjson.loads(entries)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(rows, list):
        raise ValueError("not an array")
    records = []
    for row in rows:
        if not (isinstance(row, list) and len(row) == 8 and isinstance(row[0], int)):
            raise ValueError("an entry is not an array of eight fields")
        at, action, subject, app_id, user_id, operation_id, client, request_id = row
        try:
            when = from_micros(at)
        except (OverflowError, ValueError):
            raise ValueError(f"an entry's time is out of range: {at}") from None
        records.append(
            AuditRecord(
                _action(action), subject, when, app_id, user_id, operation_id, client, request_id
            )
        )
    return records


def open_audit_log(
    database: Database,
    clock: Callable[[], datetime] = utc_now,
    *,
    signing_key: ECKey | None = None,
) -> AuditLog:
    """The audit trail of the store in `database` (migrated): in that database, except on
    SQLite, where it is a file beside the store's, opened and migrated here and closed by
    `AuditLog.close` (see the module's docstring). With `signing_key` (the service's: every
    process that serves or works passes it) each append signs a checkpoint of the head, and
    `verify` checks it."""
    if not isinstance(database, SQLiteDatabase):
        return AuditLog(database, clock, signing_key=signing_key)
    path = database.path
    own = SQLiteDatabase(
        path.with_name(f"{path.stem}-audit{path.suffix or '.sqlite3'}"), database.timeouts
    )
    own.migrate()
    return AuditLog(own, clock, owns_database=True, signing_key=signing_key)


def checkpoint_payload(sequence: int, digest: str) -> bytes:
    """What a checkpoint signs: the head's sequence and hash, as canonical JSON."""
    return orjson.dumps({"hash": digest, "sequence": sequence})


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
_CHECKPOINT = select(
    audit_checkpoint.c.sequence, audit_checkpoint.c.hash, audit_checkpoint.c.signature
).where(audit_checkpoint.c.id == 1)


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
        signing_key: ECKey | None = None,
    ):
        self.database = database
        self.clock = clock
        self.signing_key = signing_key
        self._owns_database = owns_database
        self._statements: dict[str, str] = {}  # name -> compiled SQL (`_compiled`)

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
        within: Transaction | None = None,
    ) -> AuditEntry:
        """Append one entry now (committed when this returns, or with `within`, see `append`);
        the actor defaults to the worker, for what the engine does by itself (publishing,
        deleting packages)."""
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
        return self.append([record], within=within)[0]

    def append(
        self, records: Sequence[AuditRecord], *, within: Transaction | None = None
    ) -> list[AuditEntry]:
        """Append entries in one transaction, in order, after the chain's current head, each
        a link of its own (for changes: one entry at a time; batches go in `append_block`).

        `within`: the store's transaction of the change the entries record, so that both
        commit together (see the module's docstring). AuditUnavailable if they cannot be
        written: the caller's change must then not be made (raising it out of `within`'s
        block rolls that back)."""
        if not records:
            return []
        if within is not None and not self._owns_database:
            return self._unless_unwritable(lambda: self._append(within, records))
        return self._unless_unwritable(lambda: self._in_transaction(self._append, records))

    def _append(self, transaction: Transaction, records: Sequence[AuditRecord]) -> list[AuditEntry]:
        insert = self._compiled("entry", lambda: audit_log.insert(), list(_NAMES))
        sequence, previous = self._locked_head(transaction)
        entries = []
        for record in records:
            sequence += 1
            at = _micros(record.at)
            digest = hashlib.sha256(_canonical(sequence, record, at, previous)).hexdigest()
            entries.append(AuditEntry(sequence, record, previous, digest))
            transaction.execute_compiled(insert, _row(sequence, record, at, previous, digest))
            previous = digest
        self._move_head(transaction, sequence, previous)
        return entries

    def _in_transaction(self, append: Callable[[Transaction, Any], Any], records: Any) -> Any:
        with self.database.transaction() as transaction:
            return append(transaction, records)

    def _unless_unwritable(self, append: Callable[[], Any]) -> Any:
        """`append()`, with any failure of the database to take it as AuditUnavailable."""
        try:
            return append()
        except AuditUnavailable:
            raise
        except Unavailable as exc:
            raise AuditUnavailable(_UNWRITABLE) from exc
        except self.database.driver_errors as exc:  # a full disk, an I/O error, ...
            lines = str(exc).strip().splitlines()
            logger.error(
                "cannot append to the audit trail: %s: %s",
                type(exc).__name__,
                lines[0] if lines else "",
            )
            raise AuditUnavailable(_UNWRITABLE) from exc

    def append_block(self, records: Sequence[AuditRecord]) -> AuditBlock | None:
        """Append entries in one transaction as one link: one row and one hash for all of
        them (the read entries `AuditBuffer` gathers)."""
        if not records:
            return None
        return self._unless_unwritable(lambda: self._in_transaction(self._append_block, records))

    def _append_block(self, transaction: Transaction, records: Sequence[AuditRecord]) -> AuditBlock:
        entries, first_at, last_at = encode_block(records)
        insert = self._compiled("block", lambda: audit_block.insert(), _BLOCK_NAMES)
        sequence, previous = self._locked_head(transaction)
        first, last = sequence + 1, sequence + len(records)
        digest = block_hash(first, last, entries, previous)
        block = AuditBlock(first, last, first_at, last_at, entries, previous, digest)
        transaction.execute_compiled(
            insert, (first, last, first_at, last_at, entries, previous, digest)
        )
        self._move_head(transaction, last, digest)
        return block

    def _locked_head(self, transaction: Transaction) -> tuple[int, str]:
        """The head's sequence and hash, locked until the transaction ends (see the module),
        with the transaction's idle time bounded from here on (`Database.limit_idle`)."""
        self.database.limit_idle(transaction)
        head = transaction.fetch_one(_HEAD.with_for_update())
        if head is None:
            raise RuntimeError("the audit log has no head row: is it migrated?")
        return head[0], head[1]

    def _move_head(self, transaction: Transaction, sequence: int, digest: str) -> None:
        update = self._compiled(
            "head",
            lambda: (
                audit_head.update()
                .where(audit_head.c.id == bindparam("id"))
                .values(sequence=bindparam("sequence"), hash=bindparam("hash"))
            ),
            ["sequence", "hash", "id"],
        )
        transaction.execute_compiled(update, (sequence, digest, 1))
        if self.signing_key is not None:
            self._sign_head(transaction, sequence, digest)

    def _sign_head(self, transaction: Transaction, sequence: int, digest: str) -> None:
        """Write the checkpoint of the head just moved (see the module's docstring)."""
        key = self.signing_key
        assert key is not None
        signature = jws.serialize_compact(
            {"alg": _CHECKPOINT_ALGORITHM, "kid": key.kid},
            checkpoint_payload(sequence, digest),
            key,
            algorithms=[_CHECKPOINT_ALGORITHM],
        )
        upsert = self._compiled(
            "checkpoint",
            lambda: (
                self.database.insert(audit_checkpoint)
                .values(
                    id=bindparam("id"),
                    sequence=bindparam("sequence"),
                    hash=bindparam("hash"),
                    signature=bindparam("signature"),
                )
                .on_conflict_do_update(
                    index_elements=[audit_checkpoint.c.id],
                    set_={
                        "sequence": bindparam("new_sequence"),
                        "hash": bindparam("new_hash"),
                        "signature": bindparam("new_signature"),
                    },
                )
            ),
            ["id", "sequence", "hash", "signature", "new_sequence", "new_hash", "new_signature"],
        )
        transaction.execute_compiled(
            upsert, (1, sequence, digest, signature, sequence, digest, signature)
        )

    def check_writable(self, timeout: float) -> None:
        """Raise unless an append could take the head's lock within `timeout` seconds now
        (the readiness check: a stalled appender, a read-only database)."""
        lock = self._statements.get("lock-head")
        if lock is None:  # with its one parameter (the head's id) written in: run without any
            statement = _HEAD.with_for_update()
            lock = str(
                statement.compile(
                    dialect=self.database.dialect, compile_kwargs={"literal_binds": True}
                )
            )
            self._statements["lock-head"] = lock
        self.database.ping_writable(timeout, lock)

    def _compiled(self, name: str, build: Callable[[], Any], order: list[str]) -> str:
        """A statement compiled once per log, with positional parameters in `order` (checked):
        `sqlite3` binds positional parameters several times faster than named ones."""
        sql = self._statements.get(name)
        if sql is None:
            sql, names = self.database.compile_positional(build())
            assert names == order, names
            self._statements[name] = sql
        return sql

    def entries(self, filters: AuditFilter = AuditFilter()) -> list[AuditEntry]:
        """Matching entries, oldest first (with `limit`, the newest that many): the single
        entries found by a query, and the entries of blocks, which are read through (blocks
        outside `since`..`until` are passed over by their time range)."""
        found = self._single_entries(filters) + self._block_entries(filters)
        found.sort(key=lambda entry: entry.sequence)
        return found if filters.limit is None else found[max(len(found) - filters.limit, 0) :]

    def _single_entries(self, filters: AuditFilter) -> list[AuditEntry]:
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
        return [_to_entry(row) for row in self.database.fetch_all(statement)]

    def _block_entries(self, filters: AuditFilter) -> list[AuditEntry]:
        """Matching entries of blocks, newest blocks first, until `limit` are found."""
        conditions: list[ColumnElement[bool]] = []
        if filters.since is not None:
            conditions.append(audit_block.c.last_at >= _micros(filters.since))
        if filters.until is not None:
            conditions.append(audit_block.c.first_at < _micros(filters.until))
        found: list[AuditEntry] = []
        for block in self._blocks(conditions, newest_first=True):
            try:
                records = block.records()
            except ValueError:
                continue  # a damaged block: `verify` reports it
            for index, record in enumerate(records):
                if _matches(record, filters):
                    sequence = block.first_sequence + index
                    found.append(
                        AuditEntry(
                            sequence, record, block.previous_hash, block.hash, block.first_sequence
                        )
                    )
            if filters.limit is not None and len(found) >= filters.limit:
                break
        return found

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
        """Check every link of the chain and the head; stop at the first bad link and name
        its (first) entry. Everything is read in one snapshot (`Database.snapshot`), so that
        appends made meanwhile by a live service are not taken for a cut or a forgery."""
        with self.database.snapshot() as reader:
            return self._verify(reader)

    def _verify(self, reader: Reader) -> Verification:
        expected, previous, count = 1, GENESIS, 0
        for link in self._links(reader):
            if isinstance(link, AuditBlock):
                problem = _block_problem(link, expected, previous)
                first, last = link.first_sequence, link.last_sequence
            else:
                problem = _problem(link, expected, previous)
                first = last = link.sequence
            if problem is not None:
                return Verification(count, previous, first, problem)
            expected, previous, count = last + 1, link.hash, count + last - first + 1
        head = reader.fetch_all(_HEAD)
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
            problem = "it is not the link the chain's head records (it was replaced)"
            return Verification(count, previous, count, problem)
        anchored = self._checkpoint_problem(reader, count, previous)
        if anchored is not None:
            broken_at, problem = anchored
            return Verification(count, previous, broken_at, problem)
        return Verification(count, previous)

    def _checkpoint_problem(
        self, reader: Reader, count: int, head_hash: str
    ) -> tuple[int, str] | None:
        """The first entry concerned and what is wrong with the signed checkpoint of a chain
        of `count` entries ending in `head_hash`, if anything (None without a key to check it
        with: an unanchored log)."""
        if self.signing_key is None:
            return None
        rows = reader.fetch_all(_CHECKPOINT)
        if not rows:
            if count == 0:
                return None
            return count, (
                "the chain's head has no signed checkpoint (a trail written before checkpoints "
                "gets one with its next entry)"
            )
        sequence, digest, signature = rows[0]
        public = ECKey.import_key(self.signing_key.as_dict(private=False))
        try:
            signed = jws.deserialize_compact(signature, public, algorithms=[_CHECKPOINT_ALGORITHM])
        except (JoseError, ValueError) as exc:
            return count, (
                f"the chain's checkpoint is not signed by this service's key ({exc}; the key "
                "checked is the data directory's audit-key.jwk)"
            )
        if signed.payload != checkpoint_payload(sequence, digest):
            return count, "the chain's checkpoint was changed after it was signed"
        if sequence > count:
            missing = (
                f"entry {sequence} is"
                if sequence == count + 1
                else (f"entries {count + 1} to {sequence} are")
            )
            return count + 1, (
                f"{missing} missing from the end (the signed checkpoint records entry {sequence})"
            )
        if (sequence, digest) != (count, head_hash):
            return min(sequence + 1, count), (
                f"the chain does not end where its signed checkpoint says (entry {sequence}, "
                f"hash {digest})"
            )
        return None

    def _links(self, reader: Reader) -> Iterator[AuditEntry | AuditBlock]:
        """Every link, single entries and blocks, in sequence order."""
        return heapq.merge(self._all(reader), self._blocks([], reader), key=_first_sequence)

    def _all(self, reader: Reader) -> Iterator[AuditEntry]:
        """Every single entry in sequence order, read in batches (the log may be long)."""
        after = 0
        while True:
            rows = reader.fetch_all(
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

    def _blocks(
        self,
        conditions: list[ColumnElement[bool]],
        reader: Reader | None = None,
        *,
        newest_first: bool = False,
    ) -> Iterator[AuditBlock]:
        """The blocks matching `conditions` in sequence order (or newest first), read a few
        at a time (a block holds up to `AuditBuffer.max_pending` entries), through `reader`
        (default: the database)."""
        reader = reader or self.database
        key = audit_block.c.first_sequence
        bound: ColumnElement[bool] | None = None
        while True:
            statement = (
                select(audit_block)
                .where(*conditions, *([bound] if bound is not None else []))
                .order_by(key.desc() if newest_first else key)
                .limit(_BLOCK_BATCH)
            )
            rows = reader.fetch_all(statement)
            for row in rows:
                yield AuditBlock(*row[:4], bytes(row[4]), row[5], row[6])
            if len(rows) < _BLOCK_BATCH:
                return
            bound = key < rows[-1][0] if newest_first else key > rows[-1][0]


def _first_sequence(link: AuditEntry | AuditBlock) -> int:
    return link.first_sequence if isinstance(link, AuditBlock) else link.sequence


def _matches(record: AuditRecord, filters: AuditFilter) -> bool:
    """`filters` applied to one entry, as `_single_entries`' query applies them."""
    return (
        (filters.user_id is None or record.user_id == filters.user_id)
        and (filters.subject is None or record.subject == filters.subject)
        and (filters.action is None or record.action == filters.action)
        and (filters.operation_id is None or record.operation_id == filters.operation_id)
        and (filters.since is None or record.at >= filters.since)
        and (filters.until is None or record.at < filters.until)
    )


def _block_problem(block: AuditBlock, expected: int, previous: str) -> str | None:
    first, last = block.first_sequence, block.last_sequence
    if first != expected:
        what = "missing" if first > expected else "out of order"
        return f"expected entry {expected} here, found a block from entry {first} (entries {what})"
    if block.previous_hash != previous:
        return "its block's previous hash is not the hash of the link before it"
    try:
        records = block.records()
    except ValueError as exc:
        return f"its block's entries cannot be read ({exc}): the block was changed"
    if len(records) != last - first + 1:
        return f"its block holds {len(records)} entries, not the {last - first + 1} of its range"
    if block_hash(first, last, block.entries, block.previous_hash) != block.hash:
        return "its block's hash does not match its contents (the block was changed)"
    times = [_micros(record.at) for record in records]
    if (block.first_at, block.last_at) != (min(times), max(times)):
        return "its block's time range is not its entries' (the block was changed)"
    return None


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
        *record[_AFTER_AT:],
        previous_hash,
        digest,
    )


class AuditBuffer:
    """Entries appended in blocks from a thread of its own: for the hot path (reads), where a
    commit per request would cost the request a write and empty the read cache each time.

    `add` only appends to a deque, which is safe against the flushing thread without a lock (a
    lock shared with the event loop made each flush hand the GIL back and forth with it). The
    thread appends what has gathered every `flush_seconds`, or sooner when `max_pending` are
    waiting, as blocks of at most `max_pending` entries; `close` appends the rest. If an append
    fails (the database is down), the entries are kept and tried again, up to `max_kept`;
    beyond that the oldest are dropped, with an error in the log."""

    def __init__(
        self,
        log: AuditLog,
        *,
        flush_seconds: float = 0.2,
        max_pending: int = 5000,
        max_kept: int = 100_000,
    ):
        self.log = log
        self.flush_seconds = flush_seconds
        self.max_pending = max_pending
        self.max_kept = max_kept
        self._pending: deque[AuditRecord] = deque()
        self._flushing = threading.Lock()  # one flush at a time (the thread's, close's, a test's)
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-buffer", daemon=True)
        self._thread.start()

    def add(self, record: AuditRecord) -> None:
        self._pending.append(record)
        if len(self._pending) >= self.max_pending:
            self._wake.set()

    def flush(self) -> None:
        """Append everything gathered so far (in the calling thread)."""
        with self._flushing:
            pending = self._pending
            while pending:
                block = [pending.popleft() for _ in range(min(len(pending), self.max_pending))]
                try:
                    self.log.append_block(block)
                except Exception:
                    self._keep(block)
                    raise

    def _keep(self, records: list[AuditRecord]) -> None:
        """Put entries that could not be appended back in front of the pending ones."""
        logger.exception("could not append %d audit entries; keeping them", len(records))
        self._pending.extendleft(reversed(records))
        excess = len(self._pending) - self.max_kept
        for _ in range(max(excess, 0)):
            self._pending.popleft()
        if excess > 0:
            logger.error("dropped %d audit entries that could not be appended", excess)

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
