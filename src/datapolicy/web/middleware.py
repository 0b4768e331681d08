"""ASGI middleware that every request passes through, written as plain ASGI for speed.

`GraphRequestMiddleware`:
- collapses repeated slashes in the path: the Graph SDK's default base URL ends in `/` and its
  URL templates start with one, so it really sends `/v1.0//dataPolicyOperations`;
- gives every request a `request-id` (and echoes the caller's `client-request-id`, or repeats the
  request id when none was sent), in the response headers and in `scope["state"]` for error
  bodies;
- turns any exception that escapes the app into Graph's 500 body, with those headers.
"""

from __future__ import annotations

import logging
import re
import uuid

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datapolicy.web.errors import error_response

logger = logging.getLogger(__name__)

_SLASHES = re.compile(r"//+")
_SLASHES_BYTES = re.compile(rb"//+")
_MAX_CLIENT_REQUEST_ID = 128


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
        client_request_id = _client_request_id(scope) or request_id
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_request_id"] = client_request_id
        extra = [
            (b"request-id", request_id.encode()),
            (b"client-request-id", client_request_id.encode()),
        ]

        started = False

        async def send_with_ids(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_ids)
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


def _client_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"client-request-id":
            text = value.decode("latin-1").strip()
            if 0 < len(text) <= _MAX_CLIENT_REQUEST_ID and text.isprintable():
                return text
            return None
    return None
