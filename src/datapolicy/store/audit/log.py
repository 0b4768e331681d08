"""The audit trail in the database: `AuditLog` appends entries and blocks, reads them back
(`entries`), and reads the whole chain in one snapshot for `verify` (store/audit/chain.py says
what is hashed, signed and checked).

Tables: `audit_log` holds the entries appended on their own (a change's, appended before its
response is sent), one row each; `audit_block` the batches of read entries, one row and one
hash per batch (what keeps auditing every GET cheap, docs/benchmarks.md); one-row `audit_head`
the last entry's sequence and the last link's hash; one-row `audit_checkpoint` the head signed
with the service's ES256 audit key (`audit-key.jwk`, auth/keys.py), written by every append in
the same transaction. Whoever deletes the last entries and moves the head back (the triggers of
the migrations are no obstacle to the database's owner) cannot sign the shorter chain's head
without the key, which lives in the data directory, not in the database: `verify` checks the
signature with the service's key and that the chain ends where the checkpoint says. (A
checkpoint copied earlier can be put back with a chain cut back to it; and whoever also holds the
key can rewrite everything: compare the head `verify` reports with a copy kept elsewhere to catch
those.) Every process appending to one trail must hold the same key (they share the data
directory, or a copy of `audit-key.jwk`).

Appends are serialised on the head row: the appending transaction locks it (`FOR UPDATE` on
PostgreSQL, where several processes append; on SQLite `BEGIN IMMEDIATE` already holds the write
lock), so every link follows the one committed before it and the chain never forks. The
migrations add triggers that refuse UPDATE and DELETE on entries and blocks and any move of the
head but forward: a guard against accidents, not against the database's owner (`verify` is that).

Where: on PostgreSQL the tables are in the store's database. On SQLite they are in a file of
their own beside the store's (`<store>-audit.sqlite3`, `open_audit_log`): the GET-by-id read
cache (web/hot_path/readcache.py) is emptied by every commit to the store's file, and read entries
are committed a few times a second under load. That file is migrated with the store's revisions,
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
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

from joserfc.jwk import ECKey
from sqlalchemy import ColumnElement, bindparam, select

from datapolicy.errors import Unavailable
from datapolicy.model import utc_now
from datapolicy.store.audit.chain import (
    Link,
    block_hash,
    decode_block,
    encode_block,
    entry_hash_at,
    sign_checkpoint,
    verify_chain,
)
from datapolicy.store.audit.records import (
    AFTER_AT,
    WORKER_SUBJECT,
    AuditAction,
    AuditBlock,
    AuditEntry,
    AuditFilter,
    AuditRecord,
    Verification,
    stored_action,
)
from datapolicy.store.database import Database, SQLiteDatabase, Transaction, error_summary
from datapolicy.store.tables import (
    AUDIT_STARTED,
    audit_block,
    audit_checkpoint,
    audit_head,
    audit_log,
)
from datapolicy.store.timestamps import from_micros, to_micros

# Where the chain is read from: a snapshot of the database, or the database itself.
Reader = Database | Transaction

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

_VERIFY_BATCH = 1000
_BLOCK_BATCH = 20  # blocks read at a time (each up to AuditBuffer.max_pending entries)
_NAMES = tuple(column.name for column in audit_log.columns)
_BLOCK_NAMES = [column.name for column in audit_block.columns]
_EVERYTHING = AuditFilter()
_UNWRITABLE = "The audit trail cannot be written now, so nothing was changed. Try again later."


class AuditUnavailable(Unavailable):
    """The trail cannot take an entry now (locked past the lock timeout, a full disk, the
    database gone): the change the entry would record is not made (a 503 with Retry-After)."""


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
        action=stored_action(action),
        subject=subject,
        at=from_micros(at),
        app_id=app_id,
        user_id=user_id,
        operation_id=operation_id,
        client=client,
        request_id=request_id,
    )
    return AuditEntry(sequence, record, previous_hash=row[9], hash=row[10])


def _row(
    sequence: int, record: AuditRecord, at: int, previous_hash: str, digest: str
) -> tuple[Any, ...]:
    """An entry's column values, in the order of `_NAMES` (the table's columns)."""
    return (
        sequence,
        at,
        str(record.action),
        record.subject,
        *record[AFTER_AT:],
        previous_hash,
        digest,
    )


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
            at = to_micros(record.at)
            digest = entry_hash_at(sequence, record, at, previous)
            entries.append(AuditEntry(sequence, record, previous, digest))
            transaction.execute_compiled(insert, _row(sequence, record, at, previous, digest))
            previous = digest
        self._move_head(transaction, sequence, previous)
        return entries

    def _in_transaction(
        self,
        append: Callable[[Transaction, Sequence[AuditRecord]], _T],
        records: Sequence[AuditRecord],
    ) -> _T:
        with self.database.transaction() as transaction:
            return append(transaction, records)

    def _unless_unwritable(self, append: Callable[[], _T]) -> _T:
        """`append()`, with any failure of the database to take it as AuditUnavailable."""
        try:
            return append()
        except AuditUnavailable:
            raise
        except Unavailable as exc:
            raise AuditUnavailable(_UNWRITABLE) from exc
        except self.database.driver_errors as exc:  # a full disk, an I/O error, ...
            logger.error("cannot append to the audit trail: %s", error_summary(exc))
            raise AuditUnavailable(_UNWRITABLE) from exc

    def append_block(self, records: Sequence[AuditRecord]) -> AuditBlock | None:
        """Append entries in one transaction as one link: one row and one hash for all of
        them (the read entries web/middleware/audit.py's `AuditBuffer` gathers)."""
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
        """Write the checkpoint of the head just moved (store/audit/chain.py), in the same
        transaction."""
        key = self.signing_key
        assert key is not None
        signature = sign_checkpoint(key, sequence, digest)
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

    def entries(self, filters: AuditFilter = _EVERYTHING) -> list[AuditEntry]:
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
            conditions.append(audit_log.c.at >= to_micros(filters.since))
        if filters.until is not None:
            conditions.append(audit_log.c.at < to_micros(filters.until))
        statement = select(*_COLUMNS).where(*conditions).order_by(audit_log.c.sequence.desc())
        if filters.limit is not None:
            statement = statement.limit(filters.limit)
        return [_to_entry(row) for row in self.database.fetch_all(statement)]

    def _block_entries(self, filters: AuditFilter) -> list[AuditEntry]:
        """Matching entries of blocks, newest blocks first, until `limit` are found."""
        conditions: list[ColumnElement[bool]] = []
        if filters.since is not None:
            conditions.append(audit_block.c.last_at >= to_micros(filters.since))
        if filters.until is not None:
            conditions.append(audit_block.c.first_at < to_micros(filters.until))
        found: list[AuditEntry] = []
        for block in self._blocks(conditions, newest_first=True):
            try:
                records = decode_block(block.entries)
            except ValueError:
                continue  # a damaged block: `verify` reports it
            for index, record in enumerate(records):
                if filters.matches(record):
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
        """Check every link of the chain, the head and its signed checkpoint (`verify_chain`):
        stop at the first bad link and name its (first) entry. Everything is read in one
        snapshot (`Database.snapshot`), so that appends made meanwhile by a live service are
        not taken for a cut or a forgery."""
        with self.database.snapshot() as reader:
            head = reader.fetch_all(_HEAD)
            checkpoint = reader.fetch_all(_CHECKPOINT) if self.signing_key is not None else []
            return verify_chain(
                self._links(reader),
                (head[0][0], head[0][1]) if head else None,
                (checkpoint[0][0], checkpoint[0][1], checkpoint[0][2]) if checkpoint else None,
                self.signing_key,
            )

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
        at a time (a block holds up to web/middleware/audit.py's `AuditBuffer.max_pending` entries),
        through `reader` (default: the database)."""
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
                first, last, first_at, last_at, entries, previous_hash, digest = row
                yield AuditBlock(
                    first, last, first_at, last_at, bytes(entries), previous_hash, digest
                )
            if len(rows) < _BLOCK_BATCH:
                return
            bound = key < rows[-1][0] if newest_first else key > rows[-1][0]


def _first_sequence(link: Link) -> int:
    return link.first_sequence if isinstance(link, AuditBlock) else link.sequence
