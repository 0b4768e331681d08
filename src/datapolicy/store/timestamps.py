"""Times as the store keeps them: integer microseconds since the Unix epoch, UTC (store/tables.py).

One pair of conversions for every table (operations, the queue's leases, the audit trail, whose
entry hashes are taken over these integers, so their values may never change)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(value: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (any time zone). A timedelta's floor
    division: several times cheaper than taking the delta apart, and it runs for every audit
    entry appended."""
    return (value - _EPOCH) // _MICROSECOND


def from_micros(value: int) -> datetime:
    """The aware UTC datetime of a stored time; OverflowError or ValueError outside datetime's
    range."""
    return datetime.fromtimestamp(value // 1_000_000, UTC).replace(microsecond=value % 1_000_000)
