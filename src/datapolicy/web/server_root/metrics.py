"""`GET /metrics` at the server root, in Prometheus' text format (docs/observability.md).

A server-root route (web/routes/table.py): answered by the request pipeline before
authentication, as scrapers carry no Graph token. Public unless `[metrics] token` is set, then
only for `Authorization: Bearer <token>` (docs/security.md). The store's gauges are read at
scrape time, so the page is rendered in a thread.
"""

from __future__ import annotations

import asyncio
import hmac

from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from datapolicy.web.errors import error_response, method_not_allowed


class MetricsEndpoint:
    """Answers `GET /metrics`."""

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
