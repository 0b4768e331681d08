"""The audit trail fails closed, on SQLite and PostgreSQL (each test runs on both): while
another session holds the trail's write lock (SQLite: a writer on the audit file;
PostgreSQL: `SELECT ... FROM audit_head FOR UPDATE`, the stand-in for a process frozen
mid-append), a start, an update or a deletion whose entry cannot be appended raises
`AuditUnavailable` within about `[store] lock_timeout` and changes nothing; once the lock
is gone the same calls succeed and the chain verifies."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from databases import POSTGRESQL, SQLITE, holding_the_audit_head, store_database
from datapolicy.errors import Unavailable
from datapolicy.model import Operation, OperationStatus, utc_now
from datapolicy.odata.options import QueryOptions
from datapolicy.store import Database, OperationStore, SQLiteDatabase
from datapolicy.store.audit import (
    AuditAction,
    AuditLog,
    AuditRecord,
    AuditUnavailable,
    open_audit_log,
)
from datapolicy.store.database import Timeouts, Transaction
from datapolicy.store.operations import Recorder
from datapolicy.store.tables import audit_head

LOCK_TIMEOUT = 0.3


@pytest.fixture
def quick(store_kind: str, tmp_path: Path) -> Iterator[Database]:
    """The test's store, opened as the service opens it, with a short lock timeout."""
    with store_database(store_kind, tmp_path, Timeouts(lock=LOCK_TIMEOUT)) as database:
        yield database


def recorder(log: AuditLog, action: AuditAction) -> Recorder:
    """What the web layer passes the store (web/middleware/audit.py), without a request."""

    def record(transaction: Transaction, operation: Operation) -> None:
        log.record(action, user_id=operation.user_id, operation_id=operation.id, within=transaction)

    return record


def test_changes_whose_entries_cannot_be_written_are_not_made(quick: Database):
    log = open_audit_log(quick)
    store = OperationStore(quick)
    try:
        kept, _ = store.create(
            "ada", "/exports", None, recorder(log, AuditAction.OPERATION_STARTED)
        )
        keyed, _ = store.create(
            "ada", "/exports", "key", recorder(log, AuditAction.OPERATION_STARTED)
        )
        before = store.list(QueryOptions())
        with holding_the_audit_head(log):
            attempts = {
                "start": lambda: store.create(
                    "bob", "/exports", None, recorder(log, AuditAction.OPERATION_STARTED)
                ),
                "keyed start": lambda: store.create(
                    "bob", "/exports", "other", recorder(log, AuditAction.OPERATION_STARTED)
                ),
                "update": lambda: store.update(
                    kept.id,
                    {"storageLocation": "/elsewhere"},
                    lambda operation: True,
                    recorder(log, AuditAction.OPERATION_UPDATED),
                ),
                "delete": lambda: store.delete(
                    kept.id, lambda operation: True, recorder(log, AuditAction.OPERATION_DELETED)
                ),
            }
            for name, attempt in attempts.items():
                began = time.monotonic()
                with pytest.raises(AuditUnavailable):
                    attempt()
                assert time.monotonic() - began < LOCK_TIMEOUT + 3, name
            assert store.get(kept.id) == kept  # reads go on meanwhile
        assert store.list(QueryOptions()) == before
        assert [entry.record.operation_id for entry in log.entries()] == [kept.id, keyed.id]
        # The same calls, the lock gone: made and recorded.
        store.delete(kept.id, lambda operation: True, recorder(log, AuditAction.OPERATION_DELETED))
        created, new = store.create(
            "bob", "/exports", "other", recorder(log, AuditAction.OPERATION_STARTED)
        )
        assert new
        assert store.get(created.id).status is OperationStatus.NOT_STARTED
        assert [str(e.record.action) for e in log.entries()] == [
            "operation.started",
            "operation.started",
            "operation.deleted",
            "operation.started",
        ]
        assert log.verify().ok
    finally:
        log.close()


def test_a_block_that_cannot_be_written_is_unavailable_not_a_driver_error(quick: Database):
    """The read buffer keeps such a block and tries again (AuditBuffer); what it sees is the
    store's outage error, whatever the database."""
    log = open_audit_log(quick)
    try:
        with holding_the_audit_head(log), pytest.raises(AuditUnavailable):
            log.append_block([log_record(), log_record()])
        assert log.append_block([log_record()]) is not None
        assert log.verify().entries == 1
    finally:
        log.close()


def log_record() -> AuditRecord:
    return AuditRecord(AuditAction.OPERATION_READ, "reader", utc_now())


def test_every_connection_bounds_its_waits(store_kind: str, tmp_path: Path):
    """[store] lock_timeout, statement_timeout and idle_in_transaction_timeout reach every
    PostgreSQL connection; SQLite's busy timeout is the lock timeout."""
    timeouts = Timeouts(lock=0.25, statement=7, idle_in_transaction=9)
    with store_database(store_kind, tmp_path, timeouts) as database:
        if isinstance(database, SQLiteDatabase):
            busy = database.connection().execute("PRAGMA busy_timeout").fetchone()
            assert busy == (250,)
            return
        names = ("lock_timeout", "statement_timeout", "idle_in_transaction_session_timeout")
        settings = database.fetch_all(select(*(func.current_setting(name) for name in names)))
        assert settings == [("250ms", "7s", "9s")]


@pytest.mark.parametrize("store_kind", [POSTGRESQL])  # SQLite has no sessions to end
def test_a_session_frozen_inside_an_append_is_ended_and_its_lock_released(
    store_kind: str, tmp_path: Path
):
    """A transaction that holds the head and then goes quiet (a process paused mid-append)
    is ended by the server after idle_in_transaction_timeout; appends from elsewhere go on,
    and the paused one's commit fails as an outage (a 503), not a driver error."""
    timeouts = Timeouts(lock=5, idle_in_transaction=0.5)
    with store_database(store_kind, tmp_path, timeouts) as database:
        log = open_audit_log(database)
        frozen = threading.Event()

        def hold_and_pause() -> None:
            with database.transaction() as transaction:
                transaction.fetch_one(select(audit_head.c.sequence).with_for_update())
                frozen.set()
                time.sleep(1.5)  # past the idle timeout, holding the head

        def freeze() -> None:
            with pytest.raises(Unavailable):
                hold_and_pause()

        thread = threading.Thread(target=freeze)
        thread.start()
        assert frozen.wait(10)
        began = time.monotonic()
        log.append([log_record()])
        assert time.monotonic() - began < 4  # not the whole pause, nor the lock timeout
        thread.join()
        assert log.verify().entries == 1


@pytest.mark.parametrize("store_kind", [POSTGRESQL])  # SQLite has no sessions to end
def test_a_change_frozen_after_its_append_loses_the_head_and_its_waiter_succeeds(
    store_kind: str, tmp_path: Path
):
    """A start whose transaction holds the head and then goes quiet (its process paused
    between its append and its commit) is ended after `audit_idle` (0.5 s here), not after the
    session's idle timeout (60 s): a start waiting for the head (up to `lock`, 5 s) gets it and
    succeeds instead of failing. The paused start fails as an outage and leaves nothing."""
    timeouts = Timeouts(lock=5, idle_in_transaction=60, audit_idle=0.5)
    with store_database(store_kind, tmp_path, timeouts) as database:
        log = open_audit_log(database)
        store = OperationStore(database)
        started = recorder(log, AuditAction.OPERATION_STARTED)
        frozen = threading.Event()

        def append_and_pause(transaction: Transaction, operation: Operation) -> None:
            started(transaction, operation)
            frozen.set()
            time.sleep(2)  # holding the head, past audit_idle

        def paused_start() -> None:
            with pytest.raises(Unavailable):
                store.create("paused", "/exports", None, append_and_pause)

        thread = threading.Thread(target=paused_start)
        thread.start()
        try:
            assert frozen.wait(10)
            began = time.monotonic()
            waiter, _ = store.create("waiter", "/exports", None, started)
            waited = time.monotonic() - began
        finally:
            thread.join()
        assert 0.2 < waited < 1.9  # it did wait for the head, and only until the server ended it
        everyone = store.list(QueryOptions(top=10)).items
        assert [operation.user_id for operation in everyone] == ["waiter"]
        assert [entry.record.operation_id for entry in log.entries()] == [waiter.id]
        assert log.verify().ok
        log.close()


def fill_until_full(log: AuditLog) -> None:
    """Append entries, smaller and smaller, until not even a small one fits."""
    for size in (10_000, 1_000, 100, 1):
        try:
            for _ in range(1000):
                log.record(AuditAction.OPERATION_READ, subject="filler", request_id="x" * size)
        except AuditUnavailable:
            continue


@pytest.mark.parametrize("store_kind", [SQLITE])  # a full disk, simulated by SQLite's own limit
def test_a_change_whose_entry_finds_the_disk_full_is_not_made(quick: Database):
    """The trail's file may not grow (`max_page_count`: SQLite's SQLITE_FULL, what a full disk
    gives): a DELETE is rolled back with AuditUnavailable, not a driver error (a 500)."""
    log = open_audit_log(quick)
    store = OperationStore(quick)
    try:
        kept, _ = store.create(
            "ada", "/exports", None, recorder(log, AuditAction.OPERATION_STARTED)
        )
        assert isinstance(log.database, SQLiteDatabase)
        trail_file = log.database.connection()  # this thread's, which the appends below use
        (pages,) = trail_file.execute("PRAGMA page_count").fetchone()
        trail_file.execute(f"PRAGMA max_page_count = {pages}")
        fill_until_full(log)
        with pytest.raises(AuditUnavailable):
            store.delete(
                kept.id, lambda operation: True, recorder(log, AuditAction.OPERATION_DELETED)
            )
        assert store.get(kept.id) == kept
        trail_file.execute("PRAGMA max_page_count = 1073741823")  # room again
        store.delete(kept.id, lambda operation: True, recorder(log, AuditAction.OPERATION_DELETED))
        actions = [str(e.record.action) for e in log.entries() if e.record.subject != "filler"]
        assert actions == ["operation.started", "operation.deleted"]
        assert log.verify().ok
    finally:
        log.close()


ACTIONS = {
    "start": AuditAction.OPERATION_STARTED,
    "update": AuditAction.OPERATION_UPDATED,
    "delete": AuditAction.OPERATION_DELETED,
}
STEPS = st.lists(
    st.tuples(st.sampled_from(sorted(ACTIONS)), st.booleans(), st.integers(0, 7)),
    min_size=1,
    max_size=8,
)


def change(store: OperationStore, log: AuditLog, action: str, target: str) -> Operation:
    """One change through the store, recorded as the web layer records it."""
    record = recorder(log, ACTIONS[action])
    if action == "start":
        return store.create("ada", "/exports", None, record)[0]
    if action == "update":
        location = f"/exports/{time.monotonic_ns()}"
        return store.update(target, {"storageLocation": location}, lambda o: True, record)
    return store.delete(target, lambda operation: True, record)


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=STEPS)
def test_the_store_and_the_trail_agree_whatever_is_refused(
    quick: Database, steps: list[tuple[str, bool, int]]
):
    """Generated starts, updates and deletions, each made with the trail free or held by
    another session, against a reference model: what was refused changed nothing and left no
    entry; what was made left exactly its entry. (Examples share the test's store: each
    compares what it adds.)"""
    log = open_audit_log(quick)
    store = OperationStore(quick)
    try:
        alive = [operation.id for operation in store.list(QueryOptions(top=1000)).items]
        before = len(log.entries())
        expected: list[tuple[str, str]] = []
        for action, held, pick in steps:
            if action != "start" and not alive:
                continue
            target = alive[pick % len(alive)] if alive else ""
            if held:
                with holding_the_audit_head(log), pytest.raises(AuditUnavailable):
                    change(store, log, action, target)
                continue
            operation = change(store, log, action, target)
            expected.append((str(ACTIONS[action]), operation.id))
            if action == "start":
                alive.append(operation.id)
            elif action == "delete":
                alive.remove(operation.id)
        listed = [operation.id for operation in store.list(QueryOptions(top=1000)).items]
        assert sorted(listed) == sorted(alive)
        added = [(str(e.record.action), e.record.operation_id) for e in log.entries()[before:]]
        assert added == expected
        assert log.verify().ok
    finally:
        log.close()
