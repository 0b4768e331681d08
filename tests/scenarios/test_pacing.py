"""ScenarioControl, the engine seam's test-double side, driven as the export threads drive it:
which operations are claimable in step mode, holding and releasing, slow motion, forced
failures. Threads stand in for the workers; tests/web/test_scenarios_api.py runs real ones."""

from __future__ import annotations

import threading
import time

import pytest

from datapolicy.engine.exporter import Cancelled
from datapolicy.errors import Conflict, InvalidRequest
from datapolicy.scenarios.pacing import ForcedFailure, ScenarioControl, TimeMode


def test_normal_time_lets_workers_claim_anything_and_never_holds():
    control = ScenarioControl()
    assert control.claimable() is None
    control.hold("op", threading.Event())  # returns at once
    control.pace("op", 0.0, threading.Event())
    with pytest.raises(Conflict, match="not stepped"):
        control.advance("op")


def test_step_mode_releases_an_operation_one_state_per_advance():
    control = ScenarioControl()
    control.set_time(TimeMode(mode="step"))
    assert control.claimable() == []
    states: list[str] = []

    def worker() -> None:  # claims once claimable, holds, then finishes
        while "op" not in (control.claimable() or []):
            time.sleep(0.01)
        control.hold("op", threading.Event())
        control.finished("op")

    thread = threading.Thread(target=worker)
    thread.start()
    states.append(control.advance("op", timeout=5))
    states.append(control.advance("op", timeout=5))
    thread.join(5)
    assert states == ["running", "complete"]
    with pytest.raises(Conflict, match="already released"):
        control.advance("op")


def test_advance_without_a_worker_says_so_after_its_timeout():
    control = ScenarioControl()
    control.set_time(TimeMode(mode="step"))
    with pytest.raises(Conflict, match="does this process run export workers"):
        control.advance("op", timeout=0.1)


def test_a_held_export_stops_when_told_to():
    control = ScenarioControl()
    control.set_time(TimeMode(mode="step"))
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    with pytest.raises(Cancelled):
        control.hold("op", stop)


def test_slow_motion_waits_out_the_rest_of_the_set_duration():
    control = ScenarioControl()
    control.set_time(TimeMode(mode="slow", seconds_per_export=0.4))
    began = time.monotonic()
    control.pace("op", 0.1, threading.Event())
    assert 0.25 <= time.monotonic() - began < 2
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        control.pace("op", 0.0, stop)


def test_forced_failures_apply_once_to_their_operation_or_the_next_export():
    control = ScenarioControl()
    control.fail_next(ForcedFailure("quota", "Full.", operation_id="b"))
    control.fail_next(ForcedFailure("any", "Any."))
    assert control.forced_failure("a") == ("any", "Any.")
    assert control.forced_failure("a") is None
    assert control.forced_failure("b") == ("quota", "Full.")
    assert control.failures == []


def test_time_modes_are_checked():
    with pytest.raises(InvalidRequest):
        TimeMode(mode="fast")
    with pytest.raises(InvalidRequest):
        TimeMode(mode="slow", seconds_per_export=-1)


def test_slow_motion_spreads_the_wait_over_the_export():
    """A share of the work done early waits until that share of the set time has passed, so the
    progress clients poll rises evenly; outside slow motion there is no pacer."""
    control = ScenarioControl()
    assert control.pacer("op", threading.Event()) is None
    control.set_time(TimeMode(mode="slow", seconds_per_export=0.6))
    pacer = control.pacer("op", threading.Event())
    assert pacer is not None
    began = time.monotonic()
    pacer(0.5)
    assert time.monotonic() - began >= 0.3  # half the work: half the time

    control.set_time(TimeMode(mode="slow", seconds_per_export=600))
    behind = control.pacer("op", threading.Event())
    assert behind is not None
    began = time.monotonic()
    behind(0.0)  # no share of the time is owed yet: no wait (else ten minutes would pass)
    assert time.monotonic() - began < 60


def test_a_paced_export_stops_when_asked():
    control = ScenarioControl()
    control.set_time(TimeMode(mode="slow", seconds_per_export=600))
    stop = threading.Event()
    pacer = control.pacer("op", stop)
    assert pacer is not None
    threading.Timer(0.05, stop.set).start()
    with pytest.raises(Cancelled):
        pacer(0.5)  # would wait five minutes
