"""The request pipeline: the one ASGI middleware every request passes through, doing the
cross-cutting work in one place, in this order (docs/architecture.md, "The request pipeline"):

1. proxy headers: the client's address and scheme behind trusted proxies
   (web/middleware/proxy.py);
2. path cleaning: repeated slashes collapse (the Graph SDK's default base URL ends in `/` and its
   URL templates start with one, so it really sends `/v1.0//dataPolicyOperations`);
3. the route: the path is looked up once in the route table (web/routes/table.py) and the
   `RouteMatch` put in the scope (`ROUTE`), for every step below: none matches URLs itself;
4. request ids: a `request-id` for every request, and the caller's `client-request-id` echoed
   (or the request id repeated when none was sent), in the response headers, in
   `scope["state"]` for error bodies, and on every log line of the request (logs.py);
5. cross-origin headers, when CORS is on (web/middleware/cors.py): decided here for a request
   from an allowed origin, and added to its response whoever writes it (errors included);
6. observation: the request's metrics (web/middleware/metrics.py) and its span when tracing is
   on (web/middleware/tracing.py), around everything below, so that a 500 counts as one;
7. [`serve --scenarios`: `ScenarioMiddleware`, web/test_double/faultinjection.py]
8. server-root routes (probes, `/metrics`, the console's files) and CORS preflights: answered
   here, before anything asks for a token (a browser's preflight carries none);
9. size limits: path, query and body (web/middleware/limits.py);
10. authentication and the route's permission (web/middleware/auth.py), which names the caller
    on the log;
11. [`--profile graph`: `GraphProfileMiddleware`, web/test_double/profile.py]
12. the client's rate limit (web/middleware/ratelimit.py), for API routes and unknown paths;
13. the read fast path for a plain GET by id (web/hot_path/fastpath.py), else Starlette's routing
    and the route's handler, whose reads and changes are audited (web/middleware/audit.py).

`send` is wrapped once, here (only the span, when tracing is on, and the test doubles' layers wrap
it again, for what they note): the ids and the CORS headers go into the response headers, the
status is noted for the metrics, and what is left of a request body the app answered without
reading (a 401, a 415, a 413) is read before the response goes out, so that the connection can
carry the client's next request. An HTTP/1.1 server closes a connection whose request body was
not read, without saying so, and a client that sends its next request on it in that moment sees
the connection drop with no answer. A body too large or too slow to read is not waited for: the
response then says `Connection: close`. Any exception that escapes the app becomes Graph's 500
body, with the ids.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datapolicy import logs
from datapolicy.web.errors import error_response
from datapolicy.web.hot_path.fastpath import EntityReadPath
from datapolicy.web.middleware.auth import Authentication
from datapolicy.web.middleware.cors import CrossOrigin
from datapolicy.web.middleware.limits import RequestLimits
from datapolicy.web.middleware.metrics import RequestMetrics
from datapolicy.web.middleware.proxy import ProxyHeaders
from datapolicy.web.middleware.ratelimit import ClientLimits, client_in, throttled
from datapolicy.web.middleware.tracing import RequestTracing
from datapolicy.web.routes.table import ENTITY, ROUTE, RouteTable

logger = logging.getLogger(__name__)

_SLASHES = re.compile(r"//+")
_SLASHES_BYTES = re.compile(rb"//+")
_MAX_CLIENT_REQUEST_ID = 128
DRAIN_LIMIT = 1024 * 1024  # unread body bytes read before an answer; more: Connection: close
DRAIN_TIMEOUT_S = 1.0

#: A test double's layer (the scenario middleware, the Graph profile): made around the part of
#: the pipeline it goes in front of.
Layer = Callable[[ASGIApp], ASGIApp]


class RequestPipeline:
    """The pipeline in front of `app` (Starlette's routing and handlers). Every step but the
    route, the ids and the error body is optional, so a test can run the steps it is about."""

    def __init__(
        self,
        app: ASGIApp,
        table: RouteTable,
        *,
        proxies: ProxyHeaders | None = None,
        metrics: RequestMetrics | None = None,
        cors: CrossOrigin | None = None,
        tracing: RequestTracing | None = None,
        scenarios: Layer | None = None,
        limits: RequestLimits | None = None,
        authentication: Authentication | None = None,
        profile: Layer | None = None,
        rate_limits: ClientLimits | None = None,
        fast_path: EntityReadPath | None = None,
    ):
        self.app = app
        self.table = table
        self.proxies = proxies
        self.metrics = metrics
        self.cors = cors
        self.tracing = tracing
        self.limits = limits
        self.authentication = authentication
        self.rate_limits = rate_limits
        self.fast_path = fast_path
        self._admitted: ASGIApp = self._routed if profile is None else profile(self._routed)
        self._received: ASGIApp = self._guarded if scenarios is None else scenarios(self._guarded)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # lifespan
            return
        if self.proxies is not None:
            self.proxies.rewrite(scope)
        path: str = scope["path"]
        if "//" in path:
            scope["path"] = path = _SLASHES.sub("/", path)
            if raw := scope.get("raw_path"):
                scope["raw_path"] = _SLASHES_BYTES.sub(b"/", raw)
        scope[ROUTE] = self.table.match(path)

        request_id = new_request_id()
        logs.request_id.set(request_id)  # on every log line below this request (logs.py)
        client_request_id = _client_request_id(scope) or request_id
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state["request_id"] = request_id
        state["client_request_id"] = client_request_id
        ids = [
            (b"request-id", request_id.encode()),
            (b"client-request-id", client_request_id.encode()),
        ]
        if self.cors is not None:
            ids += self.cors.headers_for(scope)

        status = 0
        body_read = True
        if _has_body(scope):
            body_read = False
            inner_receive = receive

            async def receive_tracked() -> Message:
                nonlocal body_read
                message = await inner_receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    body_read = True
                return message

            receive = receive_tracked

        async def send_once(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), *ids]
                if not body_read and not await _drain(receive):
                    headers.append((b"connection", b"close"))
                message["headers"] = headers
            await send(message)

        metrics = self.metrics
        started = time.perf_counter() if metrics is not None else 0.0
        try:
            if self.tracing is None:
                await self._received(scope, receive, send_once)
            else:
                await self.tracing.traced(self._received, scope, receive, send_once)
        except Exception:
            logger.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if status:
                raise
            response = error_response(
                Request(scope),
                500,
                "generalException",
                "An internal server error occurred; it has been logged.",
            )
            await response(scope, receive, send_once)
        finally:
            if metrics is not None:
                metrics.record(scope, status, time.perf_counter() - started)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Server-root routes and CORS preflights, then the limits and the token."""
        match = scope[ROUTE]
        route = match.route
        if route is not None and route.root and route.app is not None:
            await route.app(scope, receive, send)
            return
        if self.cors is not None and (preflight := self.cors.preflight(scope)) is not None:
            await preflight(scope, receive, send)
            return
        if self.limits is not None:
            refusal = self.limits.refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
            receive = self.limits.receive_for(scope, receive)
        if self.authentication is not None:
            needed = match.requirement(scope["method"])
            if not needed.public and not await self.authentication.admit(
                scope, receive, send, needed
            ):
                return
        await self._admitted(scope, receive, send)

    async def _routed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The client's rate limit, then the fast path or the router."""
        match = scope[ROUTE]  # again: the Graph profile may have rewritten the path
        route = match.route
        if self.rate_limits is not None and (route is None or route.rate_limited):
            wait = self.rate_limits.take(scope["method"], client_in(scope))
            if wait:
                await throttled(scope, receive, send, wait)
                return
        if (
            route is ENTITY
            and self.fast_path is not None
            and scope["method"] == "GET"
            and not scope.get("query_string")
            and await self.fast_path.serve(scope, receive, send, match.key)
        ):
            return
        await self.app(scope, receive, send)


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
_IDS_A_READ = 256  # request ids made from one read of the OS's random source


class _RandomHex:
    """Random hex digits from the OS's source (`os.urandom`, as `uuid.uuid4` uses), read
    `_IDS_A_READ` ids at a time: a read is a system call, which would otherwise be one more for
    every request. Used on the event loop's thread only."""

    def __init__(self) -> None:
        self._digits = ""
        self._offset = 0

    def take32(self) -> str:
        offset = self._offset
        if offset == len(self._digits):
            self._digits, offset = os.urandom(16 * _IDS_A_READ).hex(), 0
        self._offset = offset + 32
        return self._digits[offset : offset + 32]


_random_hex = _RandomHex()


def new_request_id() -> str:
    """A random UUID (version 4) as text: what `str(uuid.uuid4())` gives, at a fraction of its
    cost, as it builds no `UUID` (every request has one) and reads the random source once
    every `_IDS_A_READ` ids."""
    digits = _random_hex.take32()
    return (
        f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-"
        f"{_VARIANT[digits[16]]}{digits[17:20]}-{digits[20:]}"
    )


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if (name == b"content-length" and value.strip() != b"0") or name == b"transfer-encoding":
            return True
    return False


async def _drain(receive: Receive) -> bool:
    """Read and drop the rest of the request body; False if it is over `DRAIN_LIMIT` or does not
    arrive within `DRAIN_TIMEOUT_S`."""
    drained = 0
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return False
                drained += len(message.get("body", b""))
                if drained > DRAIN_LIMIT:
                    return False
                if not message.get("more_body", False):
                    return True
    except TimeoutError:
        return False


def _client_request_id(scope: Scope) -> str | None:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        if name == b"client-request-id":
            text = value.decode("latin-1").strip()
            if 0 < len(text) <= _MAX_CLIENT_REQUEST_ID and text.isprintable():
                return text
            return None
    return None
