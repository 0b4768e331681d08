"""Time control and forced failures for the export threads: the engine's `ExportControl` seam,
set through the scenario admin API.

Modes:
- `normal`: exports run as fast as they can.
- `slow`: every export lasts at least `seconds_per_export` (slow motion), its work spread
  evenly over that time so that its progress rises as it goes.
- `step`: an export stays `notStarted` until advanced once (then a worker claims it and holds
  it, `running`, before reading any data) and `running` until advanced again (then it runs and
  completes). With `step_on_poll`, every GET of the operation after the first advances it.

`advance` waits until the worker has reached the new state, so that the next read sees it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from datapolicy.engine.control import ExportControl
from datapolicy.engine.exporter import Cancelled
from datapolicy.errors import Conflict, InvalidRequest

MODES = ("normal", "slow", "step")
_STATES = ("notStarted", "running", "complete")
_WAKE_S = 0.1  # how often a held export looks at its stop event


@dataclass(frozen=True)
class TimeMode:
    mode: str = "normal"
    seconds_per_export: float = 0.0
    step_on_poll: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidRequest(f"mode must be one of {', '.join(MODES)}.")
        if not 0 <= self.seconds_per_export <= 3600:
            raise InvalidRequest("secondsPerExport must be between 0 and 3600.")

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> TimeMode:
        """The mode a client sends (`PUT .../time`, a scenarios file's `time`)."""
        _known(document, {"mode", "secondsPerExport", "stepOnPoll"})
        return cls(
            mode=typed(document, "mode", str, "normal"),
            seconds_per_export=float(typed(document, "secondsPerExport", (int, float), 0.0)),
            step_on_poll=typed(document, "stepOnPoll", bool, False),
        )

    def as_json(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "secondsPerExport": self.seconds_per_export,
            "stepOnPoll": self.step_on_poll,
        }


@dataclass(frozen=True)
class ForcedFailure:
    code: str
    message: str
    operation_id: str | None = None  # None: the next export of any operation

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> ForcedFailure:
        """The failure a client asks for (`POST .../exportFailures`, a scenarios file's
        `exportFailures`)."""
        _known(document, {"code", "message", "operationId"})
        return cls(
            code=typed(document, "code", str, "injectedFailure")[:200],
            message=typed(document, "message", str, "The export failed (injected).")[:2000],
            operation_id=typed(document, "operationId", str, None),
        )

    def as_json(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "operationId": self.operation_id}


def typed(document: dict[str, Any], name: str, kind: Any, default: Any) -> Any:
    """`document[name]` if it is of `kind` (a bool is not a number), else a 400."""
    if name not in document or (document[name] is None and default is None):
        return default
    value = document[name]
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        raise InvalidRequest(f"The property '{name}' has the wrong type.", target=name)
    return value


def _known(document: dict[str, Any], names: set[str]) -> None:
    unknown = set(document) - names
    if unknown:
        raise InvalidRequest(f"Unknown property '{sorted(unknown)[0][:60]}'.")


class ScenarioControl(ExportControl):
    """`clock` (monotonic seconds) and `wait` (`threading.Event.wait`'s contract: wait up to
    the seconds unless the event is set first; True if it was) time slow motion; tests inject
    both to run a slowed export without sleeping."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[threading.Event, float], bool] = threading.Event.wait,
    ) -> None:
        self._clock = clock
        self._wait = wait
        self._changed = threading.Condition()
        self.time = TimeMode()
        self._stages: dict[str, int] = {}  # step mode: 1 may be claimed, 2 may complete
        self._held: set[str] = set()
        self._finished: set[str] = set()
        self._polled: set[str] = set()
        self._failures: deque[ForcedFailure] = deque()

    # --- set through the admin API ---------------------------------------------------------

    def set_time(self, time_mode: TimeMode) -> None:
        with self._changed:
            self.time = time_mode
            self._stages.clear()
            self._held.clear()
            self._finished.clear()
            self._polled.clear()
            self._changed.notify_all()

    def fail_next(self, failure: ForcedFailure) -> None:
        with self._changed:
            self._failures.append(failure)

    @property
    def failures(self) -> list[ForcedFailure]:
        with self._changed:
            return list(self._failures)

    def reset(self) -> None:
        """Normal time, no forced failures."""
        self.set_time(TimeMode())
        with self._changed:
            self._failures.clear()

    def advance(self, operation_id: str, timeout: float = 10) -> str:
        """Let a stepped export go on to its next state and wait until it is there; returns the
        state's name."""
        with self._changed:
            if self.time.mode != "step":
                raise Conflict("Exports are not stepped: set the time mode to 'step' first.")
            stage = self._stages.get(operation_id, 0)
            if stage >= 2:
                raise Conflict(f"The export of operation '{operation_id}' is already released.")
            self._stages[operation_id] = stage + 1
            self._changed.notify_all()
            reached = self._held if stage == 0 else self._finished
            if not self._changed.wait_for(lambda: operation_id in reached, timeout):
                raise Conflict(
                    f"No export thread took operation '{operation_id}' to "
                    f"'{_STATES[stage + 1]}' within {timeout:g} s (does this process run "
                    "export workers?)."
                )
            return _STATES[stage + 1]

    def polled(self, operation_id: str) -> None:
        """A GET of the operation arrived: with `step_on_poll`, every one after the first
        advances it."""
        with self._changed:
            if self.time.mode != "step" or not self.time.step_on_poll:
                return
            if operation_id not in self._polled:
                self._polled.add(operation_id)
                return
            if self._stages.get(operation_id, 0) >= 2:
                return
        self.advance(operation_id)

    # --- consulted by the export threads -----------------------------------------------------

    def claimable(self) -> Collection[str] | None:
        with self._changed:
            if self.time.mode != "step":
                return None
            return [i for i, stage in self._stages.items() if stage >= 1]

    def forced_failure(self, operation_id: str) -> tuple[str, str] | None:
        with self._changed:
            for failure in self._failures:
                if failure.operation_id in (None, operation_id):
                    self._failures.remove(failure)
                    return failure.code, failure.message
        return None

    def hold(self, operation_id: str, stop: threading.Event) -> None:
        with self._changed:
            self._held.add(operation_id)
            self._changed.notify_all()
            while self.time.mode == "step" and self._stages.get(operation_id, 0) < 2:
                if stop.is_set():
                    raise Cancelled
                self._changed.wait(_WAKE_S)

    def pacer(self, operation_id: str, stop: threading.Event) -> Callable[[float], None] | None:
        """Slow motion spread over the export: when a share of the work is done before that
        share of `seconds_per_export` has passed, wait until it has (`pace` waits out the rest
        at the end), so the progress a client polls rises steadily."""
        if self.time.mode != "slow":
            return None
        seconds = self.time.seconds_per_export
        began = self._clock()

        def wait_for_share(share: float) -> None:
            ahead = share * seconds - (self._clock() - began)
            if ahead > 0 and self._wait(stop, ahead):
                raise Cancelled

        return wait_for_share

    def pace(self, operation_id: str, elapsed: float, stop: threading.Event) -> None:
        remaining = self.time.seconds_per_export - elapsed if self.time.mode == "slow" else 0
        if remaining > 0 and self._wait(stop, remaining):
            raise Cancelled

    def finished(self, operation_id: str) -> None:
        with self._changed:
            self._finished.add(operation_id)
            self._held.discard(operation_id)
            self._changed.notify_all()
