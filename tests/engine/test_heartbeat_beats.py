"""When a running export's heartbeat thread writes (engine/worker.py `_Beats`): its progress as
soon as it rose, at most every `PROGRESS_SECONDS`, and the lease every `heartbeat_seconds` even
when nothing moved. Ticks are counted, so no clock or sleep is needed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from datapolicy.engine.worker import PROGRESS_SECONDS, _Beats


def test_rising_progress_is_recorded_at_every_tick_not_only_at_each_lease_renewal():
    """With the default 2 s heartbeat, an export whose progress rises is recorded every
    PROGRESS_SECONDS: four times per lease renewal, so a 2-second export is seen moving (it was
    recorded once per 2 s, showing 0% until it completed)."""
    beats = _Beats(heartbeat_seconds=2)
    assert beats.tick_seconds == PROGRESS_SECONDS == 0.5
    recorded = []
    for percent in (10.0, 20.0, 30.0, 40.0):
        write, progress = beats.tick(percent)
        assert write
        recorded.append(progress)
        beats.written(percent)
    assert recorded == [10.0, 20.0, 30.0, 40.0]


def test_a_stalled_export_renews_its_lease_every_heartbeat_only():
    """No rise: no write until heartbeat_seconds worth of ticks have passed, then a renewal that
    records no progress."""
    beats = _Beats(heartbeat_seconds=2)
    decisions = [beats.tick(0.0) for _ in range(4)]
    assert decisions == [(False, None), (False, None), (False, None), (True, None)]


def test_a_heartbeat_shorter_than_the_progress_period_ticks_at_the_heartbeat():
    beats = _Beats(heartbeat_seconds=0.05)
    assert beats.tick_seconds == 0.05
    assert beats.tick(0.0) == (True, None)


def test_a_refused_or_failed_write_is_retried_at_the_next_tick():
    """`written` is only called for a write that went through: until then the rise is still
    pending and the lease still due."""
    beats = _Beats(heartbeat_seconds=2)
    assert beats.tick(5.0) == (True, 5.0)  # the write fails: no `written`
    assert beats.tick(5.0) == (True, 5.0)


@given(
    st.floats(min_value=0.01, max_value=60),
    st.lists(st.floats(min_value=0, max_value=99, allow_nan=False), max_size=200),
)
def test_progress_recorded_never_falls_and_the_lease_is_never_left_unrenewed(
    heartbeat_seconds: float, percents: list[float]
):
    """Whatever the progress does, what is recorded only rises, and no more than a heartbeat's
    worth of ticks (rounded) passes between writes."""
    beats = _Beats(heartbeat_seconds)
    per_renewal = max(1, round(heartbeat_seconds / beats.tick_seconds))
    recorded, since_write = 0.0, 0
    for percent in percents:
        write, progress = beats.tick(percent)
        since_write += 1
        if progress is not None:
            assert progress > recorded
            recorded = progress
        if write:
            beats.written(percent)
            since_write = 0
        assert since_write < per_renewal
