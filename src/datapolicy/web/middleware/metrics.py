"""Request metrics (docs/observability.md), a step of the request pipeline
(web/middleware/pipeline.py): every request by method, route and status in one histogram
(metrics.py), and the access log's line when `[logging] access_log` is on.

The pipeline times the request around everything after its ids: an exception escaping the app,
which the pipeline answers with a 500, counts as a 500. Labels are bounded: the route is the
metrics name of the route the pipeline matched (its template,
`/v1.0/dataPolicyOperations/{operation_id}`, never the id; `other` when no served route
matches, and for the console's files; web/routes/table.py); unknown methods are `other`. A
label child is bound once per combination and kept, so a request costs a dictionary look-up and
an `observe` (about 0.8 µs with the clock reads, docs/observability.md). `GET /metrics`, which
serves them, is web/server_root/metrics.py.
"""

from __future__ import annotations

import logging

from starlette.types import Scope

from datapolicy.metrics import REQUEST_DURATION
from datapolicy.web.routes.table import OTHER, ROUTE

logger = logging.getLogger("datapolicy.access")

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    """`record` each request's duration (and its access log line)."""

    def __init__(self, access_log: bool = False):
        self.access_log = access_log

    def record(self, scope: Scope, status: int, elapsed: float) -> None:
        method: str = scope["method"]
        if method not in _METHODS:
            method = OTHER
        name = scope[ROUTE].metrics_name
        REQUEST_DURATION.series(method, name, status).observe(elapsed)
        if self.access_log:
            # The path without its query string: $filter and $search may hold personal data.
            path, milliseconds = scope["path"], round(elapsed * 1000, 2)
            fields = {"method": method, "path": path, "status": status, "duration_ms": milliseconds}
            logger.info(
                "%s %s %d %.2fms", method, path, status, milliseconds, extra={"fields": fields}
            )
