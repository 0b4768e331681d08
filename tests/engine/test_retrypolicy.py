"""The export-level retry policy: how long a failed export waits before its next attempt, and
when it has no attempt left (engine/retrypolicy.py; docs/configuration.md, `[engine]`)."""

from __future__ import annotations

import itertools
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from datapolicy.config import EngineConfig
from datapolicy.engine.retrypolicy import ExportRetryPolicy


def test_the_default_configuration_waits_5_then_10_seconds_and_stops_after_3_failures():
    """`retry_backoff_seconds` = 5 is the wait before the second attempt and doubles; the third
    failure of `max_attempts` = 3 is the last."""
    policy = ExportRetryPolicy.of(EngineConfig())
    assert [policy.delay_after(failures) for failures in (1, 2, 3)] == [
        timedelta(seconds=5),
        timedelta(seconds=10),
        None,
    ]


@given(max_attempts=st.integers(1, 12), first=st.floats(0, 3600, allow_nan=False))
def test_every_retry_waits_twice_the_one_before_and_there_are_max_attempts_minus_one(
    max_attempts: int, first: float
):
    """For any configuration: the first retry waits `retry_backoff_seconds`, each later one
    twice as long as the one before (no jitter, no cap), and an export that has failed
    `max_attempts` times (or more) gets no other attempt."""
    policy = ExportRetryPolicy(max_attempts, first)
    delays = [policy.delay_after(failures) for failures in range(1, max_attempts + 3)]
    retries = [delay for delay in delays if delay is not None]
    assert delays == [*retries, None, None, None]
    assert len(retries) == max_attempts - 1
    assert retries[:1] in ([], [timedelta(seconds=first)])
    for before, after in itertools.pairwise(retries):
        assert abs(after - 2 * before) <= timedelta(microseconds=1)  # rounded to a microsecond
