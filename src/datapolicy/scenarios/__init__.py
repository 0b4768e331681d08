"""Scenario controls for using datapolicy as a test double (`datapolicy serve --scenarios`):
fault injection, time control of exports, a request log, reset, snapshot and restore.

Off by default and loud when on. Everything here is in-process state of one `serve` process:
time control and forced failures act on that process's own export threads, not on
`datapolicy worker` processes (docs/testing-with-datapolicy.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from datapolicy.scenarios.datadir import DataDirectory
from datapolicy.scenarios.faults import FaultInjector
from datapolicy.scenarios.pacing import ScenarioControl
from datapolicy.scenarios.requestlog import RequestLog

HEADER = "datapolicy-scenarios"  # on every response while scenarios are on

# Closes the connection from a client address (the ASGI scope's `client`) at once, without an
# answer; False if there is none. Given by the HTTP server that runs the app (server.py).
ConnectionDropper = Callable[[tuple[str, int]], bool]


@dataclass
class Scenarios:
    """The scenario state of one `serve` process, shared by the web layer and the workers."""

    data: DataDirectory
    faults: FaultInjector = field(default_factory=FaultInjector)
    control: ScenarioControl = field(default_factory=ScenarioControl)
    requests: RequestLog = field(default_factory=RequestLog)
    # For the `drop` fault; None where the server gives no way (in process, another ASGI
    # server): a dropped request then gets a 500 error body (web/test_double/faultinjection.py).
    drop_connection: ConnectionDropper | None = None


__all__ = [
    "HEADER",
    "ConnectionDropper",
    "DataDirectory",
    "FaultInjector",
    "RequestLog",
    "ScenarioControl",
    "Scenarios",
]
