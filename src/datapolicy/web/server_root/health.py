"""`GET /healthz` and `GET /readyz`: what a load balancer or an orchestrator polls.

Both live at the server root, not under the API root: they describe this process, not the Graph
API, so they are not in `$metadata` or the OpenAPI description. They are server-root routes
(web/routes/table.py), answered by the request pipeline before authentication (a prober has no
token) and after the request ids (a 503 carries them like every other error).

- `/healthz` (liveness): 200 `{"status": "ok"}` whenever the event loop runs; it touches nothing,
  so a store outage never makes an orchestrator restart a process that would recover by itself.
- `/readyz` (readiness): 200 `{"status": "ready"}` when the operation store answers a trivial
  query and can begin a write, the audit trail's head can be locked for an append (a process
  stalled mid-append, or a read-only database, would make every change wait and fail), the
  local exports directory accepts a file, and it and every configured local storage root
  (`[storage.local] roots`) have at least `[server] readiness_min_free_bytes` free (1 MiB: a full
  disk fails every export written there); otherwise 503 in Graph's error shape, with one entry in
  `details` per check that failed (`storage` once per full root, which it names by its place in
  the configuration). The body names what is not ready but not its paths, URLs or driver
  messages (the route is public); those go to the log, once per change.
  While the process drains (from the first SIGTERM on, server.py) it is 503 at once, target
  `draining`, without running the checks: every other route still answers, so a load balancer
  takes the process out of rotation before its listener closes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from datapolicy.store import OperationStore
from datapolicy.store.audit import AuditLog
from datapolicy.store.database import error_summary
from datapolicy.web.errors import error_response, method_not_allowed
from datapolicy.web.responses import json_response
from datapolicy.web.routes.table import HEALTHZ, ROUTE

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 2.0  # each check; a prober typically gives up after a few seconds
DEFAULT_MIN_FREE_BYTES = 1 << 20  # [server] readiness_min_free_bytes


@dataclass(frozen=True)
class Failure:
    """A check that failed: `target` and `message` are public; `reason` is only logged."""

    target: str
    message: str
    reason: str


class Readiness:
    """The readiness checks. Synchronous (each a syscall or a query): run in a thread."""

    def __init__(
        self,
        store: OperationStore,
        exports_dir: Path,
        audit: AuditLog | None = None,
        *,
        roots: Sequence[Path] = (),
        min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
        statvfs: Callable[[Path], os.statvfs_result] = os.statvfs,
    ):
        """`roots`: the configured local storage roots, checked for free space with the
        exports directory (`statvfs` is a seam for tests: no disk is filled to test this)."""
        self.store = store
        self.exports_dir = exports_dir
        self.audit = audit
        self.roots = tuple(root for root in roots if root != exports_dir)
        self.min_free_bytes = min_free_bytes
        self.statvfs = statvfs
        self._logged: tuple[Failure, ...] = ()

    def failures(self) -> list[Failure]:
        store = _check(
            "store", "The operation store is not answering or cannot take writes.", self._store
        )
        # On PostgreSQL the trail is in the store's database: its outage is the store's.
        audit = (
            None
            if self.audit is None
            or (store is not None and self.audit.database is self.store.database)
            else _check("audit", "The audit trail cannot take entries.", self._audit)
        )
        exports = _check("exports", "The exports directory is not writable.", self._exports)
        checks = (store, audit, exports, *self._storage())
        found = [failure for failure in checks if failure is not None]
        self._log_change(tuple(found))
        return found

    def _store(self) -> None:
        self.store.ping(CHECK_TIMEOUT_S)
        self.store.database.ping_writable(CHECK_TIMEOUT_S)

    def _audit(self) -> None:
        assert self.audit is not None
        self.audit.check_writable(CHECK_TIMEOUT_S)

    def _exports(self) -> None:
        # An anonymous temporary file (O_TMPFILE where there is one): proves a package could be
        # written, as root too (for whom permission bits prove nothing), and leaves no name.
        self.exports_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=self.exports_dir):
            pass

    def _storage(self) -> list[Failure | None]:
        """One check per storage root: the exports directory, then the configured roots in
        their order, each named by its place (never its path: the route is public)."""
        named = [(self.exports_dir, "The exports directory")]
        named += [
            (root, f"Local storage root {number} of [storage.local] roots")
            for number, root in enumerate(self.roots, 1)
        ]
        return [
            _check("storage", f"{name} is full.", partial(self._free, root)) for root, name in named
        ]

    def _free(self, root: Path) -> None:
        if not root.exists():  # the exports directory's own check reports a missing one
            return
        usage = self.statvfs(root)
        free = usage.f_bavail * usage.f_frsize
        if free < self.min_free_bytes:
            raise OSError(f"{root} has {free} bytes free, below {self.min_free_bytes}")

    def _log_change(self, found: tuple[Failure, ...]) -> None:
        """Log readiness when it changes, not on every probe."""
        if found == self._logged:
            return
        if found:
            for failure in found:
                logger.warning("not ready: %s: %s", failure.target, failure.reason)
        else:
            logger.info("ready again")
        self._logged = found


def _check(target: str, message: str, check: Callable[[], None]) -> Failure | None:
    try:
        check()
    except Exception as exc:  # anything a check raises means not ready, whatever the driver
        return Failure(target, message, error_summary(exc))
    return None


DRAINING = Failure(
    "draining", "The process is shutting down; it still serves requests for a moment.", "SIGTERM"
)


class HealthChecks:
    """Answers `/healthz` and `/readyz` (an ASGI app for both routes, behind the request
    pipeline, whose route match in the scope says which). `draining` is set
    once, when the process begins to shut down (a threading.Event: set from the signal
    handler, read here without a lock)."""

    def __init__(self, readiness: Readiness, draining: threading.Event):
        self.readiness = readiness
        self.draining = draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        if scope["method"] not in ("GET", "HEAD"):
            response = method_not_allowed(request)
        elif scope[ROUTE].route.path == HEALTHZ:  # which of its two routes the pipeline matched
            response = json_response({"status": "ok"})
        else:
            response = await self._ready(request)
        response.headers["Cache-Control"] = "no-store"
        await response(scope, receive, send)

    async def _ready(self, request: Request) -> Response:
        if self.draining.is_set():
            failures = [DRAINING]  # the checks no longer matter: out of rotation at once
        else:
            failures = await asyncio.to_thread(self.readiness.failures)
        if not failures:
            return json_response({"status": "ready"})
        names = ", ".join(failure.target for failure in failures)
        return error_response(
            request,
            503,
            "serviceNotAvailable",
            f"The service is not ready: {names}.",
            details=[
                {"code": "notReady", "message": failure.message, "target": failure.target}
                for failure in failures
            ],
        )
