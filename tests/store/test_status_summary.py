"""The store's figures for the metrics scrape (`status_summary`, and metrics.py's
`StoreCollector`, which reuses one answer for `max_age` seconds, concurrent scrapes included, so
that a public /metrics page cannot make the store run its GROUP BY once per request) and the
queue's report of a lease taken over (`Job.expired_owner`), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from datapolicy.metrics import StoreCollector
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

    assert queue.claim("worker-a", LEASE) is not None
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
    first = queue.claim("worker-a", LEASE)
    assert first is not None
    assert first.expired_owner is None
    clock.now += LEASE + timedelta(seconds=1)
    second = queue.claim("worker-b", LEASE)
    assert second is not None
    assert second.expired_owner == "worker-a"


class CountingStore(OperationStore):
    """The real store, counting its status queries."""

    def __init__(self, database: Database):
        super().__init__(database)
        self.queries = 0

    def status_summary(self) -> dict[OperationStatus, tuple[int, datetime | None]]:
        self.queries += 1
        return super().status_summary()


class Seconds:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def operations_gauge(collector: StoreCollector) -> dict[str, float]:
    families = {family.name: family for family in collector.collect()}
    return {s.labels["status"]: s.value for s in families["datapolicy_operations"].samples}


def test_scrapes_within_max_age_reuse_one_query_then_see_new_operations(database: Database):
    store, clock = CountingStore(database), Seconds()
    collector = StoreCollector(store, max_age=5.0, clock=clock)
    store.create("alice", "/exports")
    for _ in range(50):
        assert operations_gauge(collector)["notStarted"] == 1
    assert store.queries == 1
    store.create("bob", "/exports")
    clock.now += 4.9
    assert operations_gauge(collector)["notStarted"] == 1  # still the kept answer
    clock.now += 0.1
    assert operations_gauge(collector)["notStarted"] == 2
    assert store.queries == 2


def test_concurrent_scrapes_run_one_query(database: Database):
    store = CountingStore(database)
    collector = StoreCollector(store, max_age=60.0)
    barrier = threading.Barrier(8)

    def scrape() -> None:
        barrier.wait()
        operations_gauge(collector)

    threads = [threading.Thread(target=scrape) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.queries == 1
