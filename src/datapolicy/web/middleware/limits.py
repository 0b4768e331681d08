"""Limits on the size of a request, a step of the request pipeline checked before the token is:
400 for a path or query string longer than `[limits]` allows, 413 for a body larger than
`max_body_bytes`, 408 for a body that has not arrived whole within `body_timeout_seconds` of the
request's start.

A long URL is a 400 `BadRequest`, not HTTP's 414: Graph documents no 414 among the statuses it
returns (learn.microsoft.com/graph/errors), so Graph clients and SDKs do not expect one.

A body declared too large (`Content-Length`) is refused before any of it is read. A body sent
without a length (chunked) is counted as the app reads it: the read that passes the limit raises
the 413 instead of returning the chunk, so no route can read more than the limit, whichever way
the body comes. Each read also waits only until the body's deadline: a client that sends its
headers and then stalls (or trickles) gets a 408 `RequestTimeout` instead of holding a connection
and a request for as long as it likes (the HTTP server sets no such limit of its own). What is
left unread is then drained or the connection closed by the request pipeline
(web/middleware/pipeline.py), never read whole.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope

from datapolicy.config import LimitsConfig
from datapolicy.web.errors import HTTPError, error_response


class RequestLimits:
    """A step of the request pipeline (web/middleware/pipeline.py)."""

    def __init__(self, limits: LimitsConfig):
        self.max_path = limits.max_path_length
        self.max_query = limits.max_query_length
        self.max_body = limits.max_body_bytes
        self.body_timeout = limits.body_timeout_seconds

    def refusal(self, scope: Scope) -> Response | None:
        """The error response for a request over a limit its headers show, else None."""
        path = scope.get("raw_path") or scope["path"].encode()
        if len(path) > self.max_path:
            message = f"The request path is longer than {self.max_path} bytes."
            return _refusal(scope, HTTPError(400, message))
        if len(scope["query_string"]) > self.max_query:
            message = f"The query string is longer than {self.max_query} bytes."
            return _refusal(scope, HTTPError(400, message))
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body:
                return _refusal(scope, _body_too_large(self.max_body))
        return None

    def receive_for(self, scope: Scope, receive: Receive) -> Receive:
        """`receive`, counted and timed when the request has a body."""
        for name, value in scope["headers"]:
            if (name == b"content-length" and value.isdigit() and int(value) > 0) or (
                name == b"transfer-encoding"
            ):
                deadline = asyncio.get_running_loop().time() + self.body_timeout
                return _counted(receive, self.max_body, deadline)
        return receive


def _body_too_large(max_bytes: int) -> HTTPError:
    return HTTPError(413, f"The request body is larger than {max_bytes} bytes.")


def _counted(receive: Receive, max_bytes: int, deadline: float) -> Receive:
    """`receive`, raising a 413 from the read that takes the body past `max_bytes`, and a 408
    from a read of the body still waiting at `deadline` (the event loop's clock)."""
    received = 0
    complete = False

    async def receive_counted() -> Message:
        nonlocal received, complete
        if complete:  # the body is in: what follows is a disconnect, waited for as long as it takes
            return await receive()
        try:
            async with asyncio.timeout_at(deadline):
                message = await receive()
        except TimeoutError:
            raise HTTPError(408, "The request body did not arrive in time.") from None
        complete = message["type"] != "http.request" or not message.get("more_body", False)
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise _body_too_large(max_bytes)
        return message

    return receive_counted


def _refusal(scope: Scope, error: HTTPError) -> Response:
    return error_response(Request(scope), error.status, error.code, error.message)
