"""Request metrics and `GET /metrics` (docs/observability.md).

`RequestMetrics` records every request by method, route and status in one histogram
(metrics.py), for the request pipeline (web/middleware/pipeline.py), which times the request around
everything after its ids: an exception escaping the app, which the pipeline answers with a 500,
counts as a 500. Labels are bounded: the route is the metrics name of the route the pipeline
matched (its template, `/v1.0/dataPolicyOperations/{operation_id}`, never the id; `other` when
no served route matches; web/routes/table.py); unknown methods are `other`. A label child is
bound once per combination and kept, so a request costs a dictionary look-up and an `observe`
(~3 µs in all, docs/observability.md).

`MetricsEndpoint` answers `GET /metrics` at the server root in Prometheus' text format, before
authentication (scrapers carry no Graph token): public unless `[metrics] token` is set, then
only for `Authorization: Bearer <token>` (docs/security.md). The store's gauges are read at
scrape time, so the page is rendered in a thread.
"""

from __future__ import annotations

import asyncio
import hmac
import logging

from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from datapolicy.metrics import REQUEST_DURATION
from datapolicy.web.errors import error_response, method_not_allowed
from datapolicy.web.routes.table import OTHER, ROUTE

logger = logging.getLogger("datapolicy.access")

METRICS = "/metrics"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    """A step of the request pipeline (web/middleware/pipeline.py): `record` each request's
    duration."""

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
            logger.info("%s %s %d %.2fms", method, scope["path"], status, elapsed * 1000)


class MetricsEndpoint:
    """Answers `GET /metrics` (a server-root route of web/routes/table.py)."""

    def __init__(self, token: str | None = None):
        self.token = None if token is None else token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        if scope["method"] not in ("GET", "HEAD"):
            response = method_not_allowed(request)
        elif not self._authorized(scope):
            response = error_response(
                request,
                401,
                "InvalidAuthenticationToken",
                "The metrics need the scrape token: Authorization: Bearer <[metrics] token>.",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        else:
            # The format the scraper asks for (OpenMetrics or Prometheus text 0.0.4).
            encode, content_type = choose_encoder(request.headers.get("accept", ""))
            body = await asyncio.to_thread(encode, REGISTRY)
            response = Response(body, headers={"Content-Type": content_type})
        response.headers["Cache-Control"] = "no-store"
        await response(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        if self.token is None:
            return True
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, given = value.strip().partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(
                    given.strip(), self.token
                )
        return False
