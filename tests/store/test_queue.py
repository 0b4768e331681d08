"""The operation store as a work queue, on SQLite and PostgreSQL: claims, leases and their
fencing, retries, deletion; and the same under concurrency, where several workers (each with a
database connection pool of its own, as separate processes have) claim from one queue and API
requests race with each other and with the workers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from databases import POSTGRESQL
from datapolicy.errors import PreconditionFailed, Unavailable
from datapolicy.model import Operation, OperationError, OperationStatus, ProgressDetail
from datapolicy.store import Database, OperationStore, PostgreSQLDatabase, SQLiteDatabase
from datapolicy.store.queue import Job, JobKind, OperationQueue
from datapolicy.store.tables import operations

LEASE = timedelta(seconds=30)
START = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    """A clock the test moves; every store and queue of a test shares one."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(database: Database, clock: Clock) -> OperationStore:
    return OperationStore(database, clock)


@pytest.fixture
def queue(database: Database, clock: Clock) -> OperationQueue:
    return OperationQueue(database, clock)


@pytest.fixture
def other_connections(database: Database) -> Iterator[Callable[[], Database]]:
    """Opens more databases on the test's store, as other processes would."""
    opened: list[Database] = []

    def open_another() -> Database:
        if isinstance(database, SQLiteDatabase):
            another: Database = SQLiteDatabase(database.path)
        else:
            assert isinstance(database, PostgreSQLDatabase)
            another = PostgreSQLDatabase(database._url, pool_min_size=1, pool_max_size=2)
        opened.append(another)
        return another

    yield open_another
    for another in opened:
        another.close()


def create(store: OperationStore, user: str = "u") -> Operation:
    return store.create(user, f"/exports/{user}")[0]


def published(location: str = "/exports/p.zip") -> Callable[[], str]:
    return lambda: location


def never() -> str:
    raise AssertionError("publish must not run without the lease")


# --- one worker ------------------------------------------------------------------------------


def test_a_claim_takes_the_oldest_and_starts_it(store, queue, clock):
    first = create(store, "a")
    clock.advance(timedelta(seconds=1))
    create(store, "b")
    job = queue.claim("w1", LEASE)
    assert job is not None
    assert (job.kind, job.operation.id, job.attempt) == (JobKind.EXPORT, first.id, 1)
    running = store.get(first.id)
    assert (running.status, running.version) == (OperationStatus.RUNNING, 2)


def test_the_progress_detail_changes_only_with_the_progress_and_its_version(store, queue):
    """What was written is recorded in the heartbeat that records a rise, never in one that
    does not (a lower percentage, a renewal only): a reader sees the two from one moment, and
    a new version whenever either changed. Completion records what was written in all."""
    operation = create(store)
    queue.claim("w1", LEASE)
    assert store.get(operation.id).progress_detail is None
    first = ProgressDetail("shop/orders", 1200, 0)
    assert queue.heartbeat(operation.id, "w1", LEASE, 40.0, first)
    recorded = store.get(operation.id)
    assert (recorded.progress, recorded.progress_detail) == (40.0, first)
    assert queue.heartbeat(operation.id, "w1", LEASE, 30.0, ProgressDetail("shop/x", 1, 0))
    assert queue.heartbeat(operation.id, "w1", LEASE, None, ProgressDetail("shop/y", 2, 0))
    unchanged = store.get(operation.id)
    assert (unchanged.progress_detail, unchanged.version) == (first, recorded.version)
    final = ProgressDetail("files/a.pdf", 2500, 123_456)
    assert queue.complete(operation.id, "w1", published(), final)
    assert store.get(operation.id).progress_detail == final


def test_completion_publishes_and_records_the_outcome(store, queue):
    operation = create(store)
    queue.claim("w1", LEASE)
    assert queue.heartbeat(operation.id, "w1", LEASE, 40.0)
    assert queue.heartbeat(operation.id, "w1", LEASE, 30.0)  # progress never goes down
    assert store.get(operation.id).progress == 40.0
    assert queue.complete(operation.id, "w1", published())
    done = store.get(operation.id)
    assert (done.status, done.progress, done.completed_at) == (
        OperationStatus.COMPLETE,
        100.0,
        START,
    )
    assert queue.claim("w2", LEASE) is None


def test_a_worker_whose_lease_expired_cannot_complete_over_its_successor(store, queue, clock):
    operation = create(store)
    assert queue.claim("old", LEASE) is not None
    clock.advance(LEASE + timedelta(seconds=1))  # "old" stopped heartbeating
    successor = queue.claim("new", LEASE)
    assert successor is not None
    assert (successor.operation.id, successor.attempt) == (operation.id, 2)
    assert not queue.heartbeat(operation.id, "old", LEASE, 90.0)
    assert not queue.complete(operation.id, "old", never)
    queue.fail(operation.id, "old", OperationError("x", "stale"), 1)
    queue.retry_later(operation.id, "old", timedelta(0), OperationError("x", "stale"))
    queue.release(operation.id, "old")
    assert store.get(operation.id).status is OperationStatus.RUNNING
    assert queue.complete(operation.id, "new", published())
    assert store.get(operation.id).status is OperationStatus.COMPLETE


def test_retries_wait_and_worker_losses_are_counted_apart_until_they_run_out(store, queue, clock):
    """A failure's retry waits for its delay; a worker that dies holding the export is not the
    export's failure: it counts against `max_worker_losses`, whose last loss fails the operation
    with workerLost and the reason each attempt ended."""
    operation = create(store)
    queue.claim("w1", LEASE, max_worker_losses=2)
    queue.retry_later(operation.id, "w1", timedelta(seconds=10), OperationError("busy", "later"), 1)
    assert queue.claim("w2", LEASE, max_worker_losses=2) is None  # not yet
    clock.advance(timedelta(seconds=10))
    job = queue.claim("w2", LEASE, max_worker_losses=2)
    assert job is not None
    assert (job.attempt, job.worker_losses) == (2, 0)
    clock.advance(LEASE + timedelta(seconds=1))  # w2 died holding it: a first loss
    job = queue.claim("w3", LEASE, max_worker_losses=2)
    assert job is not None
    assert (job.attempt, job.worker_losses, job.expired_owner) == (3, 1, "w2")
    clock.advance(LEASE + timedelta(seconds=1))  # w3 died too: the losses run out
    assert queue.claim("w4", LEASE, max_worker_losses=2) is None
    failed = store.get(operation.id)
    assert failed.status is OperationStatus.FAILED
    assert failed.error.code == "workerLost"
    assert failed.error.message == (
        "The export was interrupted: its worker stopped responding 2 times (gave up after 3 "
        "attempts: attempt 1: busy: later; attempt 2: workerLost: its worker (w2) stopped "
        "renewing its lease; attempt 3: workerLost: its worker (w3) stopped renewing its lease)"
    )


def test_a_final_failure_quotes_every_attempt_s_reason(store, queue, clock):
    operation = create(store)
    queue.claim("w1", LEASE)
    queue.retry_later(operation.id, "w1", timedelta(0), OperationError("sourceError", "down"), 1)
    clock.advance(timedelta(seconds=1))
    queue.claim("w2", LEASE)
    queue.fail(operation.id, "w2", OperationError("storageError", "full"), 2, with_history=True)
    assert store.get(operation.id).error == OperationError(
        "storageError", "full (gave up after 2 attempts: attempt 1: sourceError: down)"
    )


def test_deleting_a_running_export_makes_a_cleanup_job(store, queue):
    operation = create(store)
    queue.claim("w1", LEASE)
    store.delete(operation.id, lambda op: True)
    assert not queue.heartbeat(operation.id, "w1", LEASE, 50.0)  # stop
    assert queue.deletion_requested(operation.id)
    queue.release(operation.id, "w1")
    job = queue.claim("w2", LEASE)
    assert job is not None
    assert job.kind is JobKind.CLEANUP
    queue.purge(operation.id, "w2")
    assert store.database.fetch_all(operations.select()) == []


# --- concurrency -------------------------------------------------------------------------------


def test_concurrent_workers_never_claim_the_same_operation(store, clock, other_connections):
    """Eight workers, each with a database of its own, claim as fast as they can until the
    queue is empty: every operation is claimed exactly once."""
    created = {create(store, f"u{n}").id for n in range(120)}
    claimed: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def work(index: int) -> None:
        queue = OperationQueue(other_connections(), clock)
        start.wait()
        while (job := queue.claim(f"w{index}", LEASE)) is not None:
            with lock:
                claimed.append(job.operation.id)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    assert len(claimed) == len(set(claimed)), "an operation was claimed twice"
    assert set(claimed) == created


def test_expired_leases_are_taken_over_once(store, queue, clock, other_connections):
    """Workers racing for operations whose worker died: each is taken over by one of them."""
    created = [create(store, f"u{n}").id for n in range(40)]
    while queue.claim("dead", LEASE) is not None:
        pass
    clock.advance(LEASE + timedelta(seconds=1))
    takeovers: list[tuple[str, str]] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def work(index: int) -> None:
        successor = OperationQueue(other_connections(), clock)
        start.wait()
        while (job := successor.claim(f"w{index}", LEASE)) is not None:
            with lock:
                takeovers.append((job.operation.id, f"w{index}"))

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(work, range(6)))
    assert sorted(op for op, _ in takeovers) == sorted(created)
    for operation_id, owner in takeovers:  # only the successor can finish it
        assert not queue.complete(operation_id, "dead", never)
        assert queue.complete(operation_id, owner, published())


def test_a_completion_in_progress_is_not_taken_over(store, queue, clock, other_connections):
    """A worker publishes (inside its completing transaction) just as its lease runs out: a
    successor's claim must not take the operation while the package appears."""
    operation = create(store)
    queue.claim("slow", LEASE)
    clock.advance(LEASE + timedelta(seconds=1))
    publishing = threading.Event()
    successor = OperationQueue(other_connections(), clock)

    def publish() -> str:
        publishing.set()
        time.sleep(0.3)
        return "/exports/p.zip"

    with ThreadPoolExecutor(1) as pool:
        completed = pool.submit(queue.complete, operation.id, "slow", publish)
        assert publishing.wait(10)
        assert successor.claim("next", LEASE) is None
        assert completed.result()
    assert store.get(operation.id).status is OperationStatus.COMPLETE


def test_concurrent_starts_with_one_idempotency_key_make_one_operation(
    store, clock, other_connections
):
    start = threading.Barrier(8)

    def begin(_: int) -> tuple[str, bool]:
        api = OperationStore(other_connections(), clock)
        start.wait()
        operation, created = api.create("alice", "/exports/a", "client-request-id:k1")
        return operation.id, created

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(begin, range(8)))
    assert len({operation_id for operation_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1


def test_concurrent_patches_with_one_etag_change_it_once(store, clock, other_connections):
    """Two PATCHes with the same If-Match: one wins, the other is told the ETag is stale."""
    operation = create(store)
    start = threading.Barrier(2)

    def patch(location: str) -> str:
        api = OperationStore(other_connections(), clock)
        start.wait()

        def if_match(current: Operation) -> bool:
            time.sleep(0.2)  # both would have read version 1 without the row lock
            return current.version == operation.version

        try:
            return api.update(operation.id, {"storageLocation": location}, if_match).etag
        except PreconditionFailed:
            return "stale"

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(patch, ["/exports/x", "/exports/y"]))
    assert outcomes == ['W/"2"', "stale"]
    assert store.get(operation.id).version == 2


def test_a_delete_racing_a_claim_leaves_no_export_behind(store, clock, other_connections):
    """DELETE of a notStarted operation while a worker claims: either the claim came first
    (the operation is running and marked for cleanup) or the DELETE did (no worker got it)."""
    api = OperationStore(other_connections(), clock)
    worker = OperationQueue(other_connections(), clock)
    for round_ in range(20):
        operation = create(store, f"r{round_}")
        start = threading.Barrier(2)

        def delete(operation: Operation = operation, start: threading.Barrier = start) -> None:
            start.wait()
            api.delete(operation.id, lambda op: True)

        def claim(start: threading.Barrier = start) -> Job | None:
            start.wait()
            return worker.claim("w", LEASE)

        with ThreadPoolExecutor(2) as pool:
            deleted, claimed = pool.submit(delete), pool.submit(claim)
            deleted.result()
            job = claimed.result()
        if job is not None:
            assert job.operation.id == operation.id
            assert not worker.heartbeat(operation.id, "w", LEASE, 1.0)  # told to stop
            assert worker.deletion_requested(operation.id)
            worker.release(operation.id, "w")
            cleanup = worker.claim("w", LEASE)
            assert cleanup is not None
            assert cleanup.kind is JobKind.CLEANUP
            worker.purge(operation.id, "w")
        assert store.database.fetch_all(operations.select()) == []


@pytest.mark.parametrize("store_kind", [POSTGRESQL], indirect=True)
def test_on_postgresql_a_claim_skips_a_locked_row_instead_of_waiting(store, queue, database, clock):
    """A row locked by a PATCH or DELETE in progress is skipped, not waited for: the next one
    is claimed at once. (On SQLite claims and writes take turns on the database's lock.)"""
    locked, free = create(store, "locked"), create(store, "free")
    holding, release = threading.Event(), threading.Event()

    def hold_the_row() -> None:
        with database.transaction() as transaction:
            store._locked(transaction, locked.id)
            holding.set()
            release.wait(10)

    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(hold_the_row)
        assert holding.wait(10)
        began = time.monotonic()
        job = queue.claim("w1", LEASE)
        waited = time.monotonic() - began
        release.set()
        held.result()
    assert job is not None
    assert job.operation.id == free.id
    assert waited < 2


class FrozenAfterWriting(OperationQueue):
    """A worker's queue that freezes (as a SIGSTOP'd process does) inside its transactions,
    right after each write and before the commit, until `thaw` is set."""

    def __init__(self, database: Database, clock: Clock) -> None:
        super().__init__(database, clock)
        self.frozen, self.thaw = threading.Event(), threading.Event()

    def _write(self, transaction: Any, condition: Any, **values: Any) -> int:
        written = super()._write(transaction, condition, **values)
        self.frozen.set()
        self.thaw.wait(30)
        return written


@pytest.mark.parametrize("store_kind", [POSTGRESQL], indirect=True)
@pytest.mark.parametrize("step", ["claim", "heartbeat"])
def test_on_postgresql_a_worker_frozen_mid_transaction_is_taken_over_soon_after_its_lease(
    store, database, clock, other_connections, step
):
    """A worker frozen between a write and its commit (in a claim, or a heartbeat) holds the
    row's lock; a successor's claim skips locked rows. The server must end that frozen session
    after the short idle bound of the queue's transactions (`[store] audit_idle_timeout`, 2 s),
    not after `idle_in_transaction_timeout` (60 s): the chaos test once saw one takeover come a
    minute after the others (tests/test_chaos.py, the frozen victim)."""
    operation = create(store)
    victim = FrozenAfterWriting(other_connections(), clock)
    successor = OperationQueue(database, clock)
    with ThreadPoolExecutor(1) as pool:
        if step == "claim":
            frozen = pool.submit(victim.claim, "victim", LEASE)
        else:
            victim.thaw.set()
            assert victim.claim("victim", LEASE) is not None
            victim.thaw.clear()
            victim.frozen.clear()
            frozen = pool.submit(victim.heartbeat, operation.id, "victim", LEASE, 50.0)
        assert victim.frozen.wait(10)
        clock.advance(LEASE + timedelta(seconds=1))
        began = time.monotonic()
        while (job := successor.claim("successor", LEASE)) is None:
            assert time.monotonic() - began < 15, "the frozen worker's lock was never released"
            time.sleep(0.1)
        victim.thaw.set()
        with pytest.raises(Unavailable):  # its session was ended: its write is rolled back
            frozen.result()
    assert job.operation.id == operation.id
    assert job.attempt == 1 if step == "claim" else 2


def test_an_idle_claim_reads_the_queue_s_indexes_not_every_operation(tmp_path: Path):
    """An idle export thread claims every `poll_seconds` and usually finds nothing: with its
    LIMIT bound as a parameter, SQLite walked the whole submission-order index then (130 ms a
    claim at 100,000 operations); written into the SQL, it reads the indexes of the active and
    the deleted operations. SQLite's query planner only: PostgreSQL plans a bound LIMIT well."""
    from datapolicy.store.database import compile_statement

    database = SQLiteDatabase(tmp_path / "store.sqlite3")
    database.migrate()
    try:
        sql, params = compile_statement(OperationQueue._claimable(0), database.dialect)
        connection = database.connection()
        plan = [row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    finally:
        database.close()
    assert not any(step.startswith("SCAN") for step in plan), plan
    assert any("ix_operations_queue" in step for step in plan), plan


def test_the_retention_sweep_reads_one_kind_of_package_from_its_index(tmp_path: Path):
    """Receipts may be kept for years (`[erasure] receipt_retention` is off by default) in the
    index of the packages retention has not dealt with: the sweep asks for each kind of package
    (a receipt or not) apart, each a range of that index, which leads with the kind, so the
    receipts it keeps are not read at every sweep. SQLite's query planner only (PostgreSQL's,
    asked by hand with 200,000 rows, scans the same range)."""
    from datapolicy.store.database import compile_statement

    database = SQLiteDatabase(tmp_path / "store.sqlite3")
    database.migrate()
    try:
        connection = database.connection()
        plans = []
        for receipt in (False, True):
            query = OperationQueue._expired(START, timedelta(days=30), receipt)
            sql, params = compile_statement(query, database.dialect)
            plans.append(
                [row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
            )
    finally:
        database.close()
    search = "SEARCH operations USING INDEX ix_operations_retention"
    for plan in plans:
        assert plan == [f"{search} (package_receipt=? AND completed_at<?)"], plan
