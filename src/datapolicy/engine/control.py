"""The seam through which a test double steers exports: which operations may be claimed, how
long an export takes, and which must fail.

The default, `ExportControl`, changes nothing. `datapolicy serve --scenarios` gives the workers
a `datapolicy.scenarios.pacing.ScenarioControl` instead (time control and forced failures,
set through the scenario admin API), so the engine stays ignorant of HTTP and of scenarios.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection


class ExportControl:
    """No control: every operation may be claimed, exports run as fast as they can."""

    def claimable(self) -> Collection[str] | None:
        """The ids of the operations a worker may claim for export now; None: any."""
        return None

    def forced_failure(self, operation_id: str) -> tuple[str, str] | None:
        """`(code, message)` to fail this export with instead of running it; None: run it."""
        return None

    def hold(self, operation_id: str, stop: threading.Event) -> None:
        """Called once the export is claimed (status running), before any data is read; may
        block until the export is let go on. Raises `Cancelled` if `stop` is set meanwhile."""

    def pacer(self, operation_id: str, stop: threading.Event) -> Callable[[float], None] | None:
        """Called once `hold` has returned: a function the export calls with the share of its
        work done (0..1) as it goes, which may block so that a slowed export moves (and its
        progress rises) evenly over its duration instead of waiting at the end; None: no
        pacing. It raises `Cancelled` if `stop` is set meanwhile."""
        return None

    def pace(self, operation_id: str, elapsed: float, stop: threading.Event) -> None:
        """Called when the package is written, `elapsed` seconds after `hold` returned; may
        block to make the export last longer. Raises `Cancelled` if `stop` is set meanwhile."""

    def reached(self, operation_id: str, step: str) -> None:
        """The export reached `step`: "claim" (just claimed), "begin" (about to open its
        partial package), "write" (its first data written), "finish" (about to make the
        package durable and check it) or "publish" (about to complete). A test double may
        block here, or freeze the process, to put a worker past its lease at that step."""

    def finished(self, operation_id: str) -> None:
        """The worker is done with this export (complete, failed, retried or handed back)."""


NO_CONTROL = ExportControl()
