"""A server span per request, when tracing is on (tracing.py): a step of the request pipeline
(web/middleware/pipeline.py), after the ids (the request id is known), and only when tracing is
configured: with tracing off, nothing of this runs.

Written here rather than taken from opentelemetry-instrumentation-asgi, whose spans carry the
full URL with its query string (`$filter` and `$search` may hold personal data) and the
client's address and user agent: this span has the method, the route template (its name too,
bounded like the metrics' routes), the path, the status and the request id, and nothing else. It
continues the caller's trace when the request carries a W3C `traceparent`.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datapolicy import tracing
from datapolicy.web.routes.table import ROUTE

REQUEST_ID = "datapolicy.request_id"
_PROPAGATED = (b"traceparent", b"tracestate")


class RequestTracing:
    def __init__(self) -> None:
        from opentelemetry import propagate, trace

        self.tracer = tracing.tracer()
        self._extract = propagate.extract
        self._server = trace.SpanKind.SERVER
        self._error = trace.Status(trace.StatusCode.ERROR)

    async def traced(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """Run `app` on the request inside its span."""
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in _PROPAGATED
        }
        method, route = scope["method"], scope[ROUTE].metrics_name
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "http.route": route,
            "url.path": scope["path"],
        }
        request_id = scope.get("state", {}).get("request_id")
        if request_id is not None:
            attributes[REQUEST_ID] = request_id
        status = 0

        async def noted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with self.tracer.start_as_current_span(
            f"{method} {route}",
            context=self._extract(carrier),
            kind=self._server,
            attributes=attributes,
        ) as span:
            try:
                await app(scope, receive, noted)
            finally:
                if status:
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(self._error)
