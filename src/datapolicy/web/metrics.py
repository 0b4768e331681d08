"""Request metrics and `GET /metrics`, as plain ASGI (docs/observability.md).

`RequestMetrics` times every request and counts it by method, route template and status in one
histogram (metrics.py). Labels are bounded: the route is the template the path matches
(`/v1.0/dataPolicyOperations/{operation_id}`, never the id), worked out from the app's own
routes on the first request, `other` when none matches; unknown methods are `other`. A label
child is bound once per combination and kept, so a request costs a dictionary look-up and an
`observe` (~3 µs in all, docs/observability.md). It sits right inside `GraphRequestMiddleware`, so
an exception escaping the app, which that middleware answers with a 500, counts as a 500.

`MetricsEndpoint` answers `GET /metrics` at the server root in Prometheus' text format, before
authentication (scrapers carry no Graph token): public unless `[metrics] token` is set, then
only for `Authorization: Bearer <token>` (docs/security.md). The store's gauges are read at
scrape time, so the page is rendered in a thread.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
import weakref
from collections.abc import Iterable
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datapolicy.metrics import REQUEST_DURATION
from datapolicy.web.errors import error_response, method_not_allowed
from datapolicy.web.health import HEALTHZ, READYZ

logger = logging.getLogger("datapolicy.access")

METRICS = "/metrics"
OTHER = "other"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RouteTemplates:
    """Path -> route template, for the routes of an app (mounts included) and the root's own
    paths (probes, metrics). Paths without parameters are a dictionary look-up; the few with
    parameters are tried in the app's order."""

    def __init__(self, routes: Iterable[BaseRoute], root_paths: Iterable[str] = ()):
        self.static: dict[str, str] = {path: path for path in root_paths}
        self.patterns: list[tuple[re.Pattern[str], str]] = []
        self._add(routes, "")

    def _add(self, routes: Iterable[BaseRoute], prefix: str) -> None:
        for route in routes:
            if isinstance(route, Mount):
                if route.routes:
                    self._add(route.routes, prefix + route.path)
                else:  # an app of its own (static files): everything below it is one route
                    regex = compile_path(f"{prefix}{route.path}/{{path:path}}")[0]
                    self.patterns.append((regex, f"{prefix}{route.path}/{{path}}"))
            elif isinstance(route, Route):
                template = prefix + route.path
                if route.param_convertors:
                    self.patterns.append((compile_path(template)[0], template))
                else:
                    self.static[template] = template

    def __call__(self, path: str) -> str:
        template = self.static.get(path)
        if template is not None:
            return template
        for pattern, template in self.patterns:
            if pattern.match(path):
                return template
        return OTHER


class RequestMetrics:
    def __init__(self, app: ASGIApp, access_log: bool = False):
        self.app = app
        self.access_log = access_log
        self._templates: RouteTemplates | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        noted = StatusNoted(send)
        try:
            await self.app(scope, receive, noted)
        except Exception:
            noted.status = noted.status or 500  # GraphRequestMiddleware answers it with a 500
            raise
        finally:
            self._record(scope, noted.status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, elapsed: float) -> None:
        templates = self._templates
        if templates is None:
            templates = self._templates = templates_of(scope)
        method: str = scope["method"]
        if method not in _METHODS:
            method = OTHER
        REQUEST_DURATION.series(method, templates(scope["path"]), status).observe(elapsed)
        if self.access_log:
            # The path without its query string: $filter and $search may hold personal data.
            logger.info("%s %s %d %.2fms", method, scope["path"], status, elapsed * 1000)


_templates: weakref.WeakKeyDictionary[Any, RouteTemplates] = weakref.WeakKeyDictionary()


def templates_of(scope: Scope) -> RouteTemplates:
    """The templates of the Starlette app serving `scope` (Starlette puts itself there), made
    on its first request."""
    app = scope["app"]
    templates = _templates.get(app)
    if templates is None:
        templates = _templates[app] = RouteTemplates(app.routes, (HEALTHZ, READYZ, METRICS))
    return templates


def route_template(scope: Scope) -> str:
    """The route template of a request's path, or `other`."""
    return templates_of(scope)(scope["path"])


class StatusNoted:
    """A `send` that remembers the status of the response it sends (0 until it starts):
    for what observes requests from outside the app (metrics here, spans in web/tracing.py)."""

    __slots__ = ("send", "status")

    def __init__(self, send: Send):
        self.send = send
        self.status = 0

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self.send(message)


class MetricsEndpoint:
    """Answers `GET /metrics`; passes every other request on."""

    def __init__(self, app: ASGIApp, token: str | None = None):
        self.app = app
        self.token = None if token is None else token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != METRICS:
            await self.app(scope, receive, send)
            return
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
