"""Every Prometheus metric the service exports, defined in one place (docs/observability.md).

Everything is in prometheus_client's default registry, beside its process and Python
collectors, and is counted where things happen: the request pipeline (web/middleware/metrics.py,
into `RequestHistogram`, a lock-free histogram for the hot path) and the export engine
(engine/worker.py). What the operation store knows
(operations by status, the queue) is not counted in memory, where several API and worker
processes would each see a part of it: `StoreCollector` asks the store, one aggregate query,
and keeps the answer for `STORE_SUMMARY_MAX_AGE` seconds, so that scrapes (public by default)
cost the store at most one query in that time however many there are.
"""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from datapolicy.model import OperationStatus, utc_now
from datapolicy.store import OperationStore

logger = logging.getLogger(__name__)

# No `_created` series: a start time per label set that nothing here reads, and a third of the page.
disable_created_metrics()

# Request latency from microseconds (a cached GET by id) to seconds (a slow list on a big store).
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
EXPORT_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class RequestHistogram(Collector):
    """The request latency histogram, by method, route and status, kept for the event loop.

    prometheus_client's Histogram takes a lock for the sum and for the bucket on each
    observation, ~1-2 µs, most of the budget of a cached GET by id (~40 µs in all). Requests are
    timed on the event loop, one thread, so these are plain lists that need no lock: a bisect
    and two additions. The scrape (another thread) reads them as they are; at worst a sample's
    sum is one request ahead of its count, which a rate over a scrape interval does not see.
    """

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...]):
        self.name = name
        self.documentation = documentation
        self.buckets = buckets
        self._series: dict[tuple[str, str, int], RequestSeries] = {}

    def series(self, method: str, route: str, status: int) -> RequestSeries:
        """The series of one label set, made on its first request."""
        key = (method, route, status)
        found = self._series.get(key)
        if found is None:
            found = self._series[key] = RequestSeries(self.buckets)
        return found

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield self._family()

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = self._family()
        bounds = [repr(float(bound)) for bound in self.buckets] + ["+Inf"]
        for (method, route, status), series in list(self._series.items()):
            counts, total = list(series.counts), series.sum
            cumulative, running = [], 0
            for bound, count in zip(bounds, counts, strict=True):
                running += count
                cumulative.append((bound, running))
            family.add_metric([method, route, str(status)], cumulative, total)
        yield family

    def _family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(
            self.name, self.documentation, labels=("method", "route", "status")
        )


class RequestSeries:
    """One label set's bucket counts (the last is +Inf) and sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds


REQUEST_DURATION = RequestHistogram(
    "datapolicy_http_request_duration_seconds",
    "HTTP requests by method, route template and status, with their latency (the _count is "
    "the number of requests).",
    REQUEST_BUCKETS,
)
REGISTRY.register(REQUEST_DURATION)
EXPORTS = Counter(
    "datapolicy_exports",
    "Export runs by how they ended: completed, failed, retried (an attempt failed, another will "
    "follow), cancelled (deletion requested), handed_back (shutdown) or lease_lost (the lease "
    "expired and another worker took the operation over).",
    ("outcome",),
)
EXPORT_DURATION = Histogram(
    "datapolicy_export_duration_seconds",
    "Wall time of export runs that completed, from the claim to the publication.",
    buckets=EXPORT_BUCKETS,
)
EXPORT_ROWS = Counter("datapolicy_export_rows", "Records written into completed packages.")
EXPORT_BYTES = Counter(
    "datapolicy_export_bytes",
    "Content bytes (record JSON Lines and files, before compression) of completed packages.",
)
EXPORT_RETRIES = Counter(
    "datapolicy_export_retries", "Failed export attempts that were scheduled to be tried again."
)
LEASE_EXPIRIES = Counter(
    "datapolicy_lease_expiries",
    "Operations claimed from a worker whose lease had expired (it died or stalled).",
)
# Every outcome is exported from the start, at 0, so that rate() and increase() see it begin.
for _outcome in ("completed", "failed", "retried", "cancelled", "handed_back", "lease_lost"):
    EXPORTS.labels(_outcome)


# Seconds a scrape may reuse the store's figures by default (`[metrics] store_max_age_seconds`):
# below any usual scrape interval, and a GROUP BY over the status index costs 50-250 ms at 300k
# operations.
STORE_SUMMARY_MAX_AGE = 5.0


class StoreCollector(Collector):
    """Operations by status, queue depth and the age of the oldest `notStarted` operation,
    read from the store (one GROUP BY over the status index) at most once every `max_age`
    seconds: scrapes in between, concurrent ones included, reuse that answer. The age is
    worked out at each scrape, from the oldest submission time."""

    def __init__(
        self,
        store: OperationStore,
        max_age: float = STORE_SUMMARY_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.store = store
        self.max_age = max_age
        self.clock = clock
        self._lock = threading.Lock()  # one query at a time; a scrape waiting for it reuses it
        self._summary: dict[OperationStatus, tuple[int, datetime | None]] | None = None
        self._read_at = 0.0

    def _status_summary(self) -> dict[OperationStatus, tuple[int, datetime | None]]:
        with self._lock:
            if self._summary is None or self.clock() - self._read_at >= self.max_age:
                self._summary = self.store.status_summary()
                self._read_at = self.clock()
            return self._summary

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The families without samples: registering the collector queries nothing."""
        return iter(_store_families())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        by_status, depth, oldest = families = _store_families()
        try:
            summary = self._status_summary()
        except Exception as exc:  # a scrape during an outage: the other metrics still answer
            logger.warning("metrics: the operation store did not answer: %s", type(exc).__name__)
            return
        for status in OperationStatus:
            if status is not OperationStatus.UNKNOWN_FUTURE_VALUE:  # Graph's sentinel, no state
                by_status.add_metric([status.value], summary.get(status, (0, None))[0])
        waiting, oldest_submitted = summary.get(OperationStatus.NOT_STARTED, (0, None))
        depth.add_metric([], waiting)
        age = 0.0
        if oldest_submitted is not None:
            age = max(0.0, (utc_now() - oldest_submitted).total_seconds())
        oldest.add_metric([], age)
        yield from families


def _store_families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily(
            "datapolicy_operations",
            "Operations in the store by status (deleted ones count until their cleanup).",
            labels=("status",),
        ),
        GaugeMetricFamily(
            "datapolicy_queue_depth", "Operations waiting for a worker (status notStarted)."
        ),
        GaugeMetricFamily(
            "datapolicy_queue_oldest_age_seconds",
            "Age of the oldest notStarted operation (0 when none waits).",
        ),
    )


_watched: StoreCollector | None = None


def watch_store(store: OperationStore, max_age: float = STORE_SUMMARY_MAX_AGE) -> None:
    """Report `store` at every scrape of the default registry, from figures at most `max_age`
    seconds old (replacing an earlier store: a process serves one)."""
    global _watched
    if _watched is not None:
        REGISTRY.unregister(_watched)
    _watched = StoreCollector(store, max_age)
    REGISTRY.register(_watched)


def export_completed(manifest: dict[str, Any], seconds: float) -> None:
    """Count a completed export run: its duration, and its records and content bytes from the
    package's manifest."""
    EXPORTS.labels("completed").inc()
    EXPORT_DURATION.observe(seconds)
    sources = manifest.get("sources", ())
    EXPORT_ROWS.inc(sum(source["records"] for source in sources))
    EXPORT_BYTES.inc(sum(source["bytes"] for source in sources))


def export_ended(outcome: str) -> None:
    """Count an export run that ended otherwise (an outcome of `EXPORTS` but completed)."""
    EXPORTS.labels(outcome).inc()
    if outcome == "retried":
        EXPORT_RETRIES.inc()
