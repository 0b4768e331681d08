"""ASGI middleware that every request passes through, written as plain ASGI for speed.

`GraphRequestMiddleware`:
- collapses repeated slashes in the path: the Graph SDK's default base URL ends in `/` and its
  URL templates start with one, so it really sends `/v1.0//dataPolicyOperations`;
- gives every request a `request-id` (and echoes the caller's `client-request-id`, or repeats the
  request id when none was sent), in the response headers and in `scope["state"]` for error
  bodies;
- turns any exception that escapes the app into Graph's 500 body, with those headers;
- reads what is left of a request body the app answered without reading (a 401, a 415, a 413)
  before the response goes out, so that the connection can carry the client's next request. An
  HTTP/1.1 server closes a connection whose request body was not read, without saying so, and a
  client that sends its next request on it in that moment sees the connection drop with no
  answer. A body too large or too slow to read is not waited for: the response then says
  `Connection: close`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datapolicy import logs
from datapolicy.web.errors import error_response

logger = logging.getLogger(__name__)

_SLASHES = re.compile(r"//+")
_SLASHES_BYTES = re.compile(rb"//+")
_MAX_CLIENT_REQUEST_ID = 128
DRAIN_LIMIT = 1024 * 1024  # unread body bytes read before an answer; more: Connection: close
DRAIN_TIMEOUT_S = 1.0


class GraphRequestMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if "//" in path:
            scope["path"] = _SLASHES.sub("/", path)
            if raw := scope.get("raw_path"):
                scope["raw_path"] = _SLASHES_BYTES.sub(b"/", raw)
        request_id = str(uuid.uuid4())
        logs.request_id.set(request_id)  # on every log line below this request (logs.py)
        client_request_id = _client_request_id(scope) or request_id
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_request_id"] = client_request_id
        extra = [
            (b"request-id", request_id.encode()),
            (b"client-request-id", client_request_id.encode()),
        ]

        started = False
        body_read = not _has_body(scope)

        async def receive_tracked() -> Message:
            nonlocal body_read
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_read = True
            return message

        async def send_with_ids(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [*message.get("headers", []), *extra]
                if not body_read and not await _drain(receive_tracked):
                    headers.append((b"connection", b"close"))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive_tracked, send_with_ids)
        except Exception:
            logger.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if started:
                raise
            response = error_response(
                Request(scope),
                500,
                "generalException",
                "An internal server error occurred; it has been logged.",
            )
            await response(scope, receive, send_with_ids)


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
    for name, value in scope["headers"]:
        if name == b"client-request-id":
            text = value.decode("latin-1").strip()
            if 0 < len(text) <= _MAX_CLIENT_REQUEST_ID and text.isprintable():
                return text
            return None
    return None
