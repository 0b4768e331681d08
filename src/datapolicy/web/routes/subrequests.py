"""One request of a JSON batch, sent through the whole app in process (web/routes/batch.py).

A batch's request is an ASGI call into the same app the batch came through, from its outermost
layer: the request pipeline (web/middleware/pipeline.py) looks its path up, gives it its own
request id, checks its limits, authenticates it and checks the route's permission, spends its
client's rate budget, times it in the metrics and audits it, exactly as for the same request
sent alone. Nothing a batch carries reaches a handler any other way, so a batch cannot bypass a
check.

What it is sent with, built from the batch's own request:
- the batch's token (`Authorization`), its `Host`, and the client address and scheme the
  pipeline settled for the batch (behind a trusted proxy, the forwarded ones); the request's own
  `Authorization`, `Host`, framing (`Content-Length`, `Transfer-Encoding`, `Connection`) and
  forwarding (`Forwarded`, `X-Forwarded-*`) headers are dropped, so a batch's request can neither
  carry another token nor claim another address;
- its own method, URL (relative to the API root) and other headers, and its body whole;
- a fresh `state` (no principal: the token is checked again) and `IN_BATCH`, by which the
  `$batch` route refuses a batch inside a batch.

The response is captured whole, up to a budget of bytes that the batch's requests share (a
package download can be large, and a batch's answer is held in memory): what comes past it is
dropped, and the capture says it overflowed. The request itself runs to its end as it would
alone (a download is read, counted and audited), so nothing is cut off halfway.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope

#: The scope key marking a request sent by a batch (web/routes/batch.py refuses a nested batch).
IN_BATCH = "datapolicy.in_batch"

# Headers a batch's request may not set: the batch's own are used (or the server's framing).
_NOT_FORWARDED = frozenset(
    {
        b"authorization",
        b"host",
        b"content-length",
        b"transfer-encoding",
        b"connection",
        b"forwarded",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"x-forwarded-prefix",
    }
)
# What the batch passes on of its own headers.
_FROM_BATCH = (b"host", b"authorization")
# Scope keys copied from the batch's: the connection's, as the pipeline settled them (not the
# routing's: Starlette's mount of the API root has changed `root_path` in the batch's scope).
_CONNECTION_KEYS = ("asgi", "http_version", "scheme", "server", "client")


@dataclass
class Captured:
    """A response as the app sent it: status, raw headers and the whole body, unless it was
    longer than the budget (`overflowed`: the body is then incomplete)."""

    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    overflowed: bool = False


@dataclass(frozen=True)
class Target:
    """What one request of a batch is sent as: `raw_path` and `query_string` as a client sends
    them (percent-encoded bytes), `path` decoded as an HTTP server decodes it."""

    method: str
    path: str
    raw_path: bytes
    query_string: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes | None


def scope_for(batch: Scope, target: Target) -> Scope:
    """The ASGI scope of `target`, sent by the client that sent `batch`."""
    headers = [(name, value) for name, value in batch["headers"] if name in _FROM_BATCH]
    headers += [(name, value) for name, value in target.headers if name not in _NOT_FORWARDED]
    if target.body is not None:
        headers.append((b"content-length", str(len(target.body)).encode()))
    scope: dict[str, Any] = {key: batch[key] for key in _CONNECTION_KEYS if key in batch}
    scope.update(
        type="http",
        method=target.method,
        path=target.path,
        raw_path=target.raw_path,
        query_string=target.query_string,
        headers=headers,
        state={},
    )
    scope[IN_BATCH] = True
    return scope


async def call(
    app: ASGIApp, scope: Scope, body: bytes | None, budget: int, connection: Receive
) -> Captured:
    """`scope` answered by `app`, keeping at most `budget` bytes of its body; `connection` is
    the batch's `receive`, for what follows the body (a response that ends without starting, as
    a dropped connection's does, is captured with status 0).

    It runs in a task of its own, so that what the pipeline sets in context variables for it
    (its request id on every log line) stays its own and the batch's lines keep the batch's."""
    captured = Captured()
    sent = False
    # An HTTP server sends no body for a HEAD, whatever the app writes (Starlette writes one).
    keep_body = scope["method"] != "HEAD"

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body or b"", "more_body": False}
        # The body is whole: what comes next is the batch's connection's, whose body has been
        # read: its `http.disconnect` when the client goes (or the scenarios drop it).
        return await connection()

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            captured.status = message["status"]
            captured.headers = list(message.get("headers", ()))
        elif message["type"] == "http.response.body" and keep_body and not captured.overflowed:
            chunk = message.get("body", b"")
            if len(captured.body) + len(chunk) > budget:
                captured.overflowed = True
                captured.body.clear()
            else:
                captured.body += chunk

    async def run() -> None:
        await app(scope, receive, send)

    await asyncio.create_task(run())
    return captured
