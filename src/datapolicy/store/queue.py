"""The operation store seen as a work queue: every query the export workers run.

Workers *claim* an operation by writing their name and a lease expiry into its row, renew the
lease with *heartbeats* (which also record progress), and end it by completing, failing or
scheduling a retry. A worker that dies simply stops renewing: once its lease expires the
operation is claimable again and the next claim counts as another attempt.

Every write names the lease owner in its WHERE clause, so a worker whose lease has expired (and
whose operation a successor now holds) can change nothing. Publication happens inside the
completing transaction, with the row locked: no successor can claim the operation between the
lease check and the package appearing.

The same statements run on SQLite and PostgreSQL; only how a claim excludes other claims differs
(see `claim`). On SQLite every transaction takes the database's write lock when it begins
(`BEGIN IMMEDIATE`), so claims, completions and API writes simply run one after another. On
PostgreSQL (READ COMMITTED, several processes) a transaction that reads a row in order to write
it locks the row (`FOR UPDATE`: a claim, `complete`, and `fail` when it quotes the attempt
history); single-statement writes (heartbeat, retry, release, purge, a plain `fail`) need no lock
of their own: PostgreSQL re-checks an UPDATE's or DELETE's WHERE clause, the lease owner
included, against the newest version of a row once a concurrent writer of that row commits.
Every transaction but `complete`'s bounds its idle time (`_transaction`): a worker frozen
between a write and its commit would otherwise keep its row locked, and skipped by every
successor's claim, for `idle_in_transaction_timeout` (60 s) instead of its lease.

Worker losses are counted apart from export failures (migration 0007): a claim that takes over
an expired lease counts a loss in `worker_losses`, and fails the operation (`workerLost`) once
`max_worker_losses` is reached; the failures the export itself caused are `attempts -
worker_losses`, limited by the worker against `[engine] max_attempts`. Every attempt that ends
without publishing leaves a line in `attempt_history`, which the final error quotes.

The same rows carry deletion requests (`deleted_at`): a claim of such a row is a *cleanup* job
(remove the partial or published package, then the row).

Package retention takes the same leases on completed rows whose package has outlived
`[engine] package_retention`, or, for a package that holds an erasure's receipt
(`package_receipt`, written by `complete`; migration 0015), `[erasure] receipt_retention`
(`claim_expired_package`), and records when and how the package was dealt with
(`package_deleted_at`, `package_deletion`; migration 0005).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select

from datapolicy.model import (
    Operation,
    OperationError,
    OperationStatus,
    OperationType,
    ProgressDetail,
    utc_now,
)
from datapolicy.store.database import Database, Transaction
from datapolicy.store.operations import ROW, to_operation
from datapolicy.store.tables import operations
from datapolicy.store.timestamps import to_micros

# The claim's LIMIT, written into its SQL rather than bound: SQLite plans `LIMIT ?` as if the
# limit were large and walks the whole submission-order index when nothing is claimable (the
# usual state of an idle export thread: 130 ms a claim at 100,000 operations, every
# `poll_seconds`, per thread); with `LIMIT 1` it reads the queue's and the deletions' indexes,
# which hold only the active and the deleted operations.
_ONE = literal(1, literal_execute=True)

c = operations.c
_ACTIVE = (OperationStatus.NOT_STARTED.value, OperationStatus.RUNNING.value)


class JobKind(enum.Enum):
    EXPORT = "export"
    CLEANUP = "cleanup"


@dataclass(frozen=True, slots=True)
class Job:
    kind: JobKind
    operation: Operation
    attempt: int  # 1 for the first attempt at an export
    package_location: str | None  # where a completed export was published
    # The worker that held the operation before, when its lease had expired (it died or stalled).
    expired_owner: str | None = None
    worker_losses: int = 0  # of the attempts so far, how many ended with their worker lost


@dataclass(frozen=True, slots=True)
class ExpiredPackage:
    """A published package that has outlived `[engine] package_retention`."""

    operation: Operation
    package_location: str


class OperationQueue:
    def __init__(self, database: Database, clock: Callable[[], datetime] = utc_now):
        self.database = database
        self.clock = clock

    @contextmanager
    def _transaction(self) -> Iterator[Transaction]:
        """A transaction of a few statements, with its idle time bounded
        (`Database.limit_idle`): it may lock a row that other workers claim, and a worker
        frozen inside it (between a write and the commit) must let a successor take its
        operation over soon after its lease expires, not hold the row for
        `idle_in_transaction_timeout`. (`complete` is not one: it publishes inside.)"""
        with self.database.transaction() as transaction:
            self.database.limit_idle(transaction)
            yield transaction

    def claim(
        self,
        owner: str,
        lease: timedelta,
        only: Collection[str] | None = None,
        *,
        max_worker_losses: int | None = None,
    ) -> Job | None:
        """Take the oldest operation that needs a worker, or None if there is none. With `only`,
        exports are claimed only for those operation ids (a test double's step mode); cleanups
        of deleted operations are not held back.

        Taking over an expired lease counts a worker loss (not a failure of the export: those
        the worker counts against `max_attempts` when they happen); the loss that reaches
        `max_worker_losses` (None: no limit) fails the operation instead, with `workerLost` and
        the history of its attempts.

        The oldest claimable row is selected `FOR UPDATE SKIP LOCKED` and written in the same
        transaction. Here the databases differ, and the one statement means the right thing on
        each: on PostgreSQL, concurrent claims each lock a different row (a row another claim,
        or a PATCH or DELETE, holds is skipped, not waited for), so adding workers adds
        throughput and no two claims take one operation; PostgreSQL re-checks the WHERE clause
        against a row that changed since the statement began, so a row just claimed by another
        worker is not claimable any more. SQLite has no row locks and the dialect compiles no
        clause: the transaction holds the database's write lock, so claims are serialised.
        """
        while True:
            now = self.clock()
            with self._transaction() as transaction:
                row = transaction.fetch_one(self._claimable(to_micros(now), only))
                if row is None:
                    return None
                operation = to_operation(row[: len(ROW)])
                attempts, deleted_at, package_location, held_by, losses, history = row[len(ROW) :]
                if deleted_at is not None:
                    self._write(
                        transaction,
                        c.id == operation.id,
                        lease_owner=owner,
                        lease_expires_at=to_micros(now + lease),
                    )
                    return Job(JobKind.CLEANUP, operation, attempts, package_location)
                if held_by is not None:  # its worker died or stalled past its lease
                    losses += 1
                    history = _with_line(
                        history,
                        f"attempt {attempts}: workerLost: its worker ({held_by}) stopped "
                        "renewing its lease",
                    )
                    if max_worker_losses is not None and losses >= max_worker_losses:
                        self._write(
                            transaction,
                            c.id == operation.id,
                            worker_losses=losses,
                            attempt_history=history,
                            **self._failed_values(
                                now,
                                "workerLost",
                                gave_up(
                                    "The export was interrupted: its worker stopped responding "
                                    f"{losses} times",
                                    attempts,
                                    history,
                                ),
                                attempts,
                            ),
                        )
                        continue
                self._write(
                    transaction,
                    c.id == operation.id,
                    status=OperationStatus.RUNNING.value,
                    lease_owner=owner,
                    lease_expires_at=to_micros(now + lease),
                    attempts=attempts + 1,
                    worker_losses=losses,
                    attempt_history=history,
                    started_at=to_micros(now)
                    if operation.status is OperationStatus.NOT_STARTED
                    else None,
                    version=operation.version + (operation.status is OperationStatus.NOT_STARTED),
                )
                return Job(JobKind.EXPORT, operation, attempts + 1, None, held_by, losses)

    @staticmethod
    def _claimable(now: int, only: Collection[str] | None = None) -> Any:
        lease_free = or_(c.lease_owner.is_(None), c.lease_expires_at < now)
        export = and_(
            c.deleted_at.is_(None),
            c.status.in_(_ACTIVE),
            lease_free,
            or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now),
            c.approval_pending == 0,
        )
        if only is not None:
            export = and_(export, c.id.in_(list(only)))
        cleanup = and_(c.deleted_at.is_not(None), lease_free)
        return (
            select(
                *ROW,
                c.attempts,
                c.deleted_at,
                c.package_location,
                c.lease_owner,  # set only if its lease expired: the claim takes it over
                c.worker_losses,
                c.attempt_history,
            )
            .where(or_(export, cleanup))
            .order_by(c.submitted_at, c.id)
            .limit(_ONE)
            .with_for_update(skip_locked=True)
        )

    def heartbeat(
        self,
        operation_id: str,
        owner: str,
        lease: timedelta,
        progress: float | None,
        detail: ProgressDetail | None = None,
    ) -> bool:
        """Renew the lease and record progress (which never goes down), with its `detail` (what
        was written by then) when given: both change only together, and with the version, so
        that no reader (or cached read) sees one without the other.

        False means stop: the lease is lost or the operation's deletion was requested."""
        now = self.clock()
        values: dict[str, Any] = {"lease_expires_at": to_micros(now + lease)}
        if progress is not None:
            rises = c.progress < progress
            values["progress"] = case((rises, progress), else_=c.progress)
            values["version"] = case((rises, c.version + 1), else_=c.version)
            if detail is not None:
                for column, value in _detail_columns(detail).items():
                    values[column] = case((rises, value), else_=c[column])
        with self._transaction() as transaction:
            return self._write(transaction, self._held(operation_id, owner), **values) == 1

    def complete(
        self,
        operation_id: str,
        owner: str,
        publish: Callable[[], str],
        detail: ProgressDetail | None = None,
        *,
        receipt: bool = False,
    ) -> bool:
        """Publish the package and mark the operation complete, if the lease is still held;
        `detail`: what the export wrote in all (its last part, every record and byte);
        `receipt`: the package holds an erasure's receipt (retention keeps it apart), and the
        row, kept with it as proof, is cleared of the failed attempts' history, whose reasons
        may name the person's files or rows (the receipt names nothing in the clear).

        `publish` runs inside the transaction; if the lease was lost (or deletion requested)
        it is not called and False is returned, and the caller discards its upload.

        The row stays locked from the lease check until the commit: a successor's claim skips
        it, and a DELETE waits for the outcome."""
        now = self.clock()
        with self.database.transaction() as transaction:
            held = self._held(operation_id, owner)
            row = transaction.fetch_one(select(c.version).where(held).with_for_update())
            if row is None:
                return False
            location = publish()
            self._write(
                transaction,
                held,
                status=OperationStatus.COMPLETE.value,
                progress=100.0,
                completed_at=to_micros(now),
                package_location=location,
                lease_owner=None,
                lease_expires_at=None,
                next_attempt_at=None,
                error_code=None,
                error_message=None,
                version=row[0] + 1,
                package_receipt=int(receipt),
                **({"attempt_history": None} if receipt else {}),
                **({} if detail is None else _detail_columns(detail)),
            )
        return True

    def retry_later(
        self,
        operation_id: str,
        owner: str,
        delay: timedelta,
        error: OperationError,
        attempt: int | None = None,
    ) -> None:
        """Give the operation back, to be tried again after `delay`; the error is kept in case
        the attempts run out, and (given the `attempt` it ended) added to the history."""
        now = self.clock()
        values: dict[str, Any] = {}
        if attempt is not None:
            line = _line(f"attempt {attempt}: {error.code}: {error.message}")
            values["attempt_history"] = func.coalesce(c.attempt_history, "") + line
        with self._transaction() as transaction:
            self._write(
                transaction,
                self._held(operation_id, owner),
                lease_owner=None,
                lease_expires_at=None,
                next_attempt_at=to_micros(now + delay),
                error_code=error.code,
                error_message=error.message[:2000],
                **values,
            )

    def fail(
        self,
        operation_id: str,
        owner: str,
        error: OperationError,
        attempts: int,
        *,
        with_history: bool = False,
    ) -> None:
        """Fail the operation with `error`; `with_history` (the attempts ran out) appends why
        each earlier attempt ended, from `attempt_history`."""
        now = self.clock()
        with self._transaction() as transaction:
            held = self._held(operation_id, owner)
            message = error.message
            if with_history:
                row = transaction.fetch_one(select(c.attempt_history).where(held).with_for_update())
                if row is None:
                    return
                message = gave_up(error.message, attempts, row[0])
            self._write(
                transaction, held, **self._failed_values(now, error.code, message, attempts)
            )

    def release(self, operation_id: str, owner: str) -> None:
        """Hand an operation back unfinished (on shutdown); this does not count as an attempt."""
        with self._transaction() as transaction:
            self._write(
                transaction,
                self._held(operation_id, owner, deleted_ok=True),
                lease_owner=None,
                lease_expires_at=None,
                attempts=case((c.deleted_at.is_(None), c.attempts - 1), else_=c.attempts),
            )

    def purge(
        self, operation_id: str, owner: str, record: Callable[[Transaction], None] | None = None
    ) -> None:
        """Remove the row of an operation whose deletion is done; `record` (what became of its
        package, on the audit trail) runs in the same transaction if the row was removed, and
        if it raises, the row stays."""
        with self._transaction() as transaction:
            removed = transaction.execute(
                operations.delete().where(
                    c.id == operation_id, c.lease_owner == owner, c.deleted_at.is_not(None)
                )
            )
            if removed and record is not None:
                record(transaction)

    def erasure_state(self, operation_id: str) -> str | None:
        """An erasure's stored state (JSON: its request and the sources it has committed)."""
        rows = self.database.fetch_all(select(c.erasure_state).where(c.id == operation_id))
        return rows[0][0] if rows else None

    def save_erasure_state(
        self, operation_id: str, owner: str, state: str, *, renew: timedelta | None = None
    ) -> bool:
        """Store an erasure's state, if the lease is still held (False: it is not), renewing
        the lease by `renew` in the same write when given (refused, as a heartbeat is, once the
        erasure's deletion was requested: nothing more is to be deleted)."""
        values: dict[str, Any] = {"erasure_state": state}
        if renew is not None:
            values["lease_expires_at"] = to_micros(self.clock() + renew)
        with self._transaction() as transaction:
            held = self._held(operation_id, owner, deleted_ok=renew is None)
            return self._write(transaction, held, **values) == 1

    def active_for_user(self, user_id: str) -> list[Operation]:
        """The user's operations that are not finished (notStarted or running), not deleted."""
        rows = self.database.fetch_all(
            select(*ROW).where(c.user_id == user_id, c.deleted_at.is_(None), c.status.in_(_ACTIVE))
        )
        return [to_operation(row) for row in rows]

    def running(self, operation_id: str) -> bool:
        """Whether an attempt at the operation holds a live lease now (its partial package may
        be in use: the orphan sweep leaves it)."""
        now = to_micros(self.clock())
        rows = self.database.fetch_all(
            select(c.id).where(
                c.id == operation_id, c.lease_owner.is_not(None), c.lease_expires_at >= now
            )
        )
        return bool(rows)

    def deletion_requested(self, operation_id: str) -> bool:
        row = self.database.fetch_all(select(c.deleted_at).where(c.id == operation_id))
        return not row or row[0][0] is not None

    # --- package retention ---------------------------------------------------------------

    def claim_expired_package(
        self, owner: str, lease: timedelta, retention: timedelta, *, receipt: bool = False
    ) -> ExpiredPackage | None:
        """Take the oldest published package older than `retention` that retention has not
        dealt with yet (nor failed to delete within the retry delay), under a lease as an
        export is taken, or None. `receipt`: among the packages that hold an erasure's receipt,
        or else among the others (each kind has its own retention). An operation whose
        deletion was requested is left to its cleanup, which removes the package anyway."""
        now = self.clock()
        with self._transaction() as transaction:
            row = transaction.fetch_one(self._expired(now, retention, receipt))
            if row is None:
                return None
            operation = to_operation(row[: len(ROW)])
            self._write(
                transaction,
                c.id == operation.id,
                lease_owner=owner,
                lease_expires_at=to_micros(now + lease),
            )
        return ExpiredPackage(operation, row[len(ROW)])

    @staticmethod
    def _expired(now: datetime, retention: timedelta, receipt: bool) -> Any:
        """`claim_expired_package`'s query: one kind of package is one range of the retention
        index (which leads with `package_receipt`), so receipts kept for good are not read.

        Not a receipt's is an export's or a dry run's: a complete erasure whose package was
        published without the flag (by a process older than migration 0015, in a rolling
        upgrade) is in neither kind, and kept."""
        micros = to_micros(now)
        lease_free = or_(c.lease_owner.is_(None), c.lease_expires_at < micros)
        kind = (
            c.package_receipt == 1
            if receipt
            else and_(
                c.package_receipt == 0,
                or_(c.operation_type != OperationType.ERASE.value, c.dry_run.is_(True)),
            )
        )
        return (
            select(*ROW, c.package_location)
            .where(
                c.package_location.is_not(None),
                c.package_deleted_at.is_(None),
                kind,
                c.completed_at < to_micros(now - retention),
                c.deleted_at.is_(None),
                lease_free,
                or_(c.next_attempt_at.is_(None), c.next_attempt_at <= micros),
            )
            .order_by(c.completed_at, c.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )

    def package_deleted(
        self,
        operation_id: str,
        owner: str,
        outcome: str,
        record: Callable[[Transaction], None] | None = None,
    ) -> bool:
        """Record when (now) and how retention dealt with the package, and release the lease;
        False if the lease was lost meanwhile (another worker records it). `record` (the
        audit entry) runs in the same transaction; if it raises, nothing is written."""
        with self._transaction() as transaction:
            written = self._write(
                transaction,
                self._held(operation_id, owner, deleted_ok=True),
                package_deleted_at=to_micros(self.clock()),
                package_deletion=outcome,
                lease_owner=None,
                lease_expires_at=None,
                next_attempt_at=None,
            )
            if written == 1 and record is not None:
                record(transaction)
        return written == 1

    def unrecorded_package_deletion(self, operation_id: str) -> str | None:
        """What an earlier attempt did to the package, if its audit entry could not be
        written then (`keep_package_deletion`): a retry records that, instead of finding the
        package gone and recording nothing. (Retention's own outcomes always come with
        `package_deleted_at`; a kept one has none.)"""
        rows = self.database.fetch_all(
            select(c.package_deletion).where(c.id == operation_id, c.package_deleted_at.is_(None))
        )
        return rows[0][0] if rows else None

    def keep_package_deletion(
        self, operation_id: str, owner: str, outcome: str, delay: timedelta
    ) -> None:
        """Release the lease after the package was dealt with (`outcome`) but its audit entry
        could not be written: the outcome is kept for the next attempt, after `delay` (a
        deleted operation's cleanup is claimed again at once)."""
        with self._transaction() as transaction:
            self._write(
                transaction,
                self._held(operation_id, owner, deleted_ok=True),
                package_deletion=outcome,
                lease_owner=None,
                lease_expires_at=None,
                next_attempt_at=to_micros(self.clock() + delay),
            )

    def retry_package_deletion(self, operation_id: str, owner: str, delay: timedelta) -> None:
        """Release the lease after a failed deletion; the sweep tries again after `delay`."""
        with self._transaction() as transaction:
            self._write(
                transaction,
                self._held(operation_id, owner, deleted_ok=True),
                lease_owner=None,
                lease_expires_at=None,
                next_attempt_at=to_micros(self.clock() + delay),
            )

    # --- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _held(operation_id: str, owner: str, *, deleted_ok: bool = False) -> Any:
        condition = and_(c.id == operation_id, c.lease_owner == owner)
        return condition if deleted_ok else and_(condition, c.deleted_at.is_(None))

    @staticmethod
    def _failed_values(now: datetime, code: str, message: str, attempts: int) -> dict[str, Any]:
        return {
            "status": OperationStatus.FAILED.value,
            "completed_at": to_micros(now),
            "error_code": code[:64],
            "error_message": message[:2000],
            "attempts": attempts,
            "lease_owner": None,
            "lease_expires_at": None,
            "next_attempt_at": None,
            "version": c.version + 1,
        }

    @staticmethod
    def _write(transaction: Transaction, where: Any, **values: Any) -> int:
        values = {k: v for k, v in values.items() if not (k == "started_at" and v is None)}
        return transaction.execute(operations.update().where(where).values(**values))


MAX_REASON = 240  # characters of one attempt's reason kept in the history


def _line(text: str) -> str:
    return " ".join(text.split())[:MAX_REASON] + "\n"


def _with_line(history: str | None, text: str) -> str:
    return (history or "") + _line(text)


def gave_up(message: str, attempts: int, history: str | None) -> str:
    """An operation's final error message: the last reason, then how each earlier attempt
    ended (the message is capped at 2,000 characters: the oldest attempts go first)."""
    head = f"{message} (gave up after {attempts} attempts"
    lines = [line for line in (history or "").splitlines() if line]
    while lines and len(head) + sum(len(line) + 2 for line in lines) + 2 > 2000:
        lines.pop(0)
    return f"{head}: {'; '.join(lines)})" if lines else f"{head})"


def _detail_columns(detail: ProgressDetail) -> dict[str, Any]:
    """The columns that hold an operation's `progressDetail` (store/operations.py
    `progress_detail` reads them back)."""
    return {
        "progress_part": detail.part,
        "records_written": detail.records,
        "bytes_written": detail.bytes,
    }
