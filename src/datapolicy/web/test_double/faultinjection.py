"""The scenario middleware (`serve --scenarios` only), as plain ASGI: marks every response,
logs requests under the API root, injects faults, and steps exports on polls.

The request pipeline (web/middleware/pipeline.py) puts it right after the request ids (so injected
errors carry them) and before the server-root routes and authentication, as a proxy in front of the
service would: a fault hits a request whatever its token, and the log shows requests that were
refused too. The scenario admin API itself is neither logged nor faulted; which route a request
is, it reads from the route table's match (web/routes/table.py).

A dropped connection is a real one: the request's connection is closed before any answer is
sent, so the client sees the server disconnect without a response. ASGI has no message for that,
so the HTTP server that runs the app does it (`Scenarios.drop_connection`, given by server.py);
the request then waits for the server's `http.disconnect` and ends without sending anything.
Where the server gives no way (in process, another ASGI server), the request gets a 500 error
body instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datapolicy.errors import DatapolicyError
from datapolicy.scenarios import HEADER, Scenarios
from datapolicy.scenarios.faults import Fault
from datapolicy.scenarios.requestlog import LoggedRequest, redacted
from datapolicy.web.errors import error_response
from datapolicy.web.routes.table import ENTITY, ROUTE, RouteMatch

logger = logging.getLogger(__name__)

_MARK = (HEADER.encode(), b"on")


class ScenarioMiddleware:
    def __init__(self, app: ASGIApp, scenarios: Scenarios):
        self.app = app
        self.scenarios = scenarios

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), _MARK]
            await send(message)

        match: RouteMatch = scope[ROUTE]
        if not match.under_api_root or (match.route is not None and match.route.test_double):
            await self.app(scope, receive, marked)
            return
        await self._scenario(scope, receive, marked, scope["path"], match)

    async def _scenario(
        self, scope: Scope, receive: Receive, send: Send, path: str, match: RouteMatch
    ) -> None:
        started = time.monotonic()
        entry = LoggedRequest(
            sequence=self.scenarios.requests.next_sequence(),
            time=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            method=scope["method"],
            path=path,
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=redacted(scope["headers"]),
        )

        async def counted() -> Message:
            message = await receive()
            entry.body_size += len(message.get("body", b""))
            return message

        async def recorded(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
            await send(message)

        try:
            operation_id = match.key if match.route is ENTITY else None
            fault = self.scenarios.faults.fault_for(
                scope["method"], path[len(match.api_root) :], operation_id
            )
            if fault is not None:
                entry.fault = fault.kind
                if await _inject(fault, self.scenarios, scope, counted, recorded):
                    return
            if scope["method"] == "GET" and operation_id is not None:
                await _polled(self.scenarios, operation_id)
            await self.app(scope, counted, recorded)
        finally:
            entry.duration_ms = round((time.monotonic() - started) * 1000, 3)
            self.scenarios.requests.add(entry)


async def _inject(
    fault: Fault, scenarios: Scenarios, scope: Scope, receive: Receive, send: Send
) -> bool:
    """Apply `fault`; True if it answered (or dropped) the request, False if the request goes
    on (after a latency)."""
    if fault.kind == "latency":
        await asyncio.sleep(fault.seconds)
        return False
    if fault.kind == "drop":
        client, drop = scope.get("client"), scenarios.drop_connection
        if client is not None and drop is not None and drop(client):
            while (await receive())["type"] != "http.disconnect":
                pass  # the rest of the body, if any: the server says when it has closed
            return True
        fault = Fault(status=500)
    status, headers = fault.status, {}
    if fault.kind == "timeout":
        await asyncio.sleep(fault.seconds)
        status = 504
    elif fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
    code, message = Fault(status=status, code=fault.code, message=fault.message).error
    response = error_response(Request(scope), status, code, message, headers)
    await response(scope, receive, send)
    return True


async def _polled(scenarios: Scenarios, operation_id: str) -> None:
    """Step mode on polls: let the export go on before this GET reads it."""
    try:
        await asyncio.to_thread(scenarios.control.polled, operation_id)
    except DatapolicyError as exc:  # not stepped, already released, or no worker took it
        logger.warning("step on poll of %s: %s", operation_id, exc.message)
