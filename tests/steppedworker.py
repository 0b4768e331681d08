"""`datapolicy worker` (or `serve`), steered through the engine's ExportControl seam
(`claimable`, `reached`, `pacer`) from files, for tests that put a worker past its lease at
chosen steps of exports (tests/test_chaos.py) or signal, kill or cancel it while an export is
surely in progress (tests/engine/test_export_failures.py). Run as
`python tests/steppedworker.py worker --data-dir ...` with DATAPOLICY_STEP_DIR (the files) and
DATAPOLICY_STEP_NAME set:

- With DATAPOLICY_STEP_FREEZE or DATAPOLICY_STEP_HOLD, the worker claims nothing until
  `plan.json` exists, then only its operations: `{operationId: step}`.
- With DATAPOLICY_STEP_FREEZE=1, each planned export waits when it reaches its step (writing
  `at-<operationId>`); once all of them are there, the whole process freezes (SIGSTOP to itself,
  as a VM pause or a long garbage collection would), after writing `stopping`. The test resumes
  it with SIGCONT.
- With DATAPOLICY_STEP_HOLD=STEP, each export that reaches STEP (after any freeze) writes
  `holding-<operationId>` and waits there, heartbeating, until the file `go` exists.
- With DATAPOLICY_STEP_PAUSE=1 (and no plan: any operation is claimed), each export, once its
  first data is written (its partial package begun, its progress above 0), writes
  `paused-<operationId>` and waits there, heartbeating, until the file `go` exists. Unlike a
  hold it stops as an export in progress does when told to (a hand-back on a signal, a
  cancellation, a lost lease): the wait is in the export's pacing, which raises `Cancelled`.
- Once its graceful stop begins (a first SIGTERM or SIGINT), the worker claims no more work,
  then writes `stopped-claiming`.

Every package this worker writes names it in its manifest (`writtenBy`), so that a test can
tell whose package was published.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path

import orjson

from datapolicy.cli import main
from datapolicy.engine import package
from datapolicy.engine.control import ExportControl
from datapolicy.engine.exporter import Cancelled
from datapolicy.engine.worker import Worker

DIRECTORY = Path(os.environ["DATAPOLICY_STEP_DIR"])
NAME = os.environ["DATAPOLICY_STEP_NAME"]
FREEZE = os.environ.get("DATAPOLICY_STEP_FREEZE") == "1"
HOLD = os.environ.get("DATAPOLICY_STEP_HOLD")
PAUSE = os.environ.get("DATAPOLICY_STEP_PAUSE") == "1"
PLANNED = FREEZE or HOLD is not None
WAIT_S = 0.02  # how often a waiting export looks for `go`
_changed = threading.Condition()
_arrived: set[str] = set()
_held: set[str] = set()


def plan() -> dict[str, str] | None:
    try:
        return orjson.loads((DIRECTORY / "plan.json").read_bytes())
    except FileNotFoundError:
        return None


def claimable(self: ExportControl) -> Collection[str] | None:
    return list(plan() or ()) if PLANNED else None


def reached(self: ExportControl, operation_id: str, step: str) -> None:
    steps = plan() or {}
    if FREEZE and steps.get(operation_id) == step:
        with _changed:
            if operation_id not in _arrived:
                _arrived.add(operation_id)
                (DIRECTORY / f"at-{operation_id}").write_text(step)
                if len(_arrived) == len(steps):
                    (DIRECTORY / "stopping").write_text("")
                    os.kill(os.getpid(), signal.SIGSTOP)  # every export stands at its step
                    _changed.notify_all()
                else:
                    _changed.wait_for(lambda: len(_arrived) == len(steps))
    if step == HOLD and operation_id not in _held:
        _held.add(operation_id)
        (DIRECTORY / f"holding-{operation_id}").write_text(step)
        while not (DIRECTORY / "go").exists():
            time.sleep(WAIT_S)


def pacer(
    self: ExportControl, operation_id: str, stop: threading.Event
) -> Callable[[float], None] | None:
    if not PAUSE:
        return None

    def pause(share: float) -> None:
        go = DIRECTORY / "go"
        if go.exists():
            return
        (DIRECTORY / f"paused-{operation_id}").write_text(f"{share}")
        while not go.exists():
            if stop.wait(WAIT_S):
                raise Cancelled

    return pause


_stop = Worker.stop


def stop(self: Worker, grace: float | None = None, timeout: float = 30) -> None:
    self.stop_claiming()
    (DIRECTORY / "stopped-claiming").write_text("")
    _stop(self, grace, timeout)


_post_init = package.PackageWriter.__post_init__


def signed_post_init(self: package.PackageWriter) -> None:
    self.header = {**self.header, "writtenBy": NAME}
    _post_init(self)


ExportControl.claimable = claimable  # type: ignore[method-assign]
ExportControl.reached = reached  # type: ignore[method-assign]
ExportControl.pacer = pacer  # type: ignore[method-assign]
Worker.stop = stop  # type: ignore[method-assign]
package.PackageWriter.__post_init__ = signed_post_init  # type: ignore[method-assign]

if __name__ == "__main__":
    main(sys.argv[1:], prog_name="datapolicy")
