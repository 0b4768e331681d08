"""The store's one time conversion (store/timestamps.py): `to_micros` gives, for any aware
datetime in any time zone, the microseconds since the epoch that taking the UTC delta apart
gives (the conversion the operations table used before, and whose values the audit trail's
hashes were taken over), and `from_micros` turns them back into the same instant in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from datapolicy.store.timestamps import from_micros, to_micros

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

ZONES = st.builds(
    timezone,
    st.integers(min_value=-23 * 60 + 1, max_value=23 * 60 - 1).map(
        lambda minutes: timedelta(minutes=minutes)
    ),
)
# Aware datetimes whose UTC instant datetime can hold.
MOMENTS = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=ZONES
)


def reference(value: datetime) -> int:
    delta = value.astimezone(UTC) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@settings(max_examples=500, deadline=None)
@given(MOMENTS)
def test_to_micros_agrees_with_the_reference_and_round_trips(value: datetime):
    micros = to_micros(value)
    assert micros == reference(value)
    assert from_micros(micros) == value
    assert from_micros(micros).tzinfo is UTC
