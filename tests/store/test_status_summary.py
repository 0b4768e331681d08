"""The store's figures for the metrics scrape (`status_summary`) and the queue's report of a
lease taken over (`Job.expired_owner`), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from datapolicy.model import OperationStatus
from datapolicy.store import Database, OperationStore
from datapolicy.store.queue import OperationQueue

LEASE = timedelta(seconds=30)
START = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def test_counts_by_status_and_the_oldest_submission_of_each(database: Database):
    """Each status present is counted, with when its oldest operation was submitted; a claim
    moves the oldest operation from notStarted to running."""
    clock = Clock()
    store = OperationStore(database, clock)
    queue = OperationQueue(database, clock)
    assert store.status_summary() == {}
    for minute in range(3):
        clock.now = START + timedelta(minutes=minute)
        store.create(f"user-{minute}", "/exports")
    assert store.status_summary() == {OperationStatus.NOT_STARTED: (3, START)}

    assert queue.claim("worker-a", LEASE, max_attempts=3) is not None
    assert store.status_summary() == {
        OperationStatus.NOT_STARTED: (2, START + timedelta(minutes=1)),
        OperationStatus.RUNNING: (1, START),
    }


def test_a_claim_names_the_owner_whose_lease_expired(database: Database):
    """A first claim takes over nobody; a claim after the lease expired names the worker that
    held it, which the engine counts as a lease expiry."""
    clock = Clock()
    store = OperationStore(database, clock)
    queue = OperationQueue(database, clock)
    store.create("user", "/exports")
    first = queue.claim("worker-a", LEASE, max_attempts=3)
    assert first is not None
    assert first.expired_owner is None
    clock.now += LEASE + timedelta(seconds=1)
    second = queue.claim("worker-b", LEASE, max_attempts=3)
    assert second is not None
    assert second.expired_owner == "worker-a"
