"""The Graph fidelity profile (`serve --profile graph`): where datapolicy's defaults are kinder
than Microsoft Graph, answer as Graph does instead (docs/graph-compatibility.md, "The Graph
profile"), so that a client is tested against Graph's behaviour:

- an operation id that is not a GUID: 400 `BadRequest`, Graph's invalid-GUID message;
- an operation that does not exist: 400 `OperationNotFound` (Graph's backend), not 404;
- `exportPersonalData` for a user id that is not a GUID: 400 `InvalidInput`;
- a `storageLocation` that is not an Azure Blob container URL: 400 `StorageLocationNotAzureBlob`,
  target `storageLocation` (the other SAS checks are the Azure target's own, already Graph's);
- `POST /me/exportPersonalData` (and `/me/microsoft.graph.exportPersonalData`): the export of
  the caller (the token's subject), under the API root the request came in on;
- an operation's `status` is never `notStarted` (Graph's backend reports `running` from the
  start) and its `progress` runs from 0 to 1 (`graph_profile_status`, `PROGRESS_SCALE`): the
  entities of the `/dataPolicyOperations` answers are rewritten so, and their `$filter` and
  `$search` compare the same values (the app's store filters `GRAPH_PROFILE_COLUMNS`).

An ASGI layer the request pipeline (web/middleware/pipeline.py) puts right after authentication
(Graph checks the token first) and before the read fast path, whose 404 it turns into Graph's 400.
It knows the routes it changes by the route table's match (web/routes/table.py).
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datapolicy.auth.permissions import EXPORT
from datapolicy.auth.tokens import Principal
from datapolicy.config import StorageConfig
from datapolicy.model import ENTITY_SET, PROGRESS_SCALE, graph_profile_status
from datapolicy.web.errors import error_response
from datapolicy.web.routes.table import COUNT, ENTITY, ME_EXPORT, ROUTE, USER_EXPORT, RouteMatch

PROFILES = ("datapolicy", "graph")
#: The routes this layer answers itself, by method (CORS preflights offer them: web/app.py).
ANSWERED_HERE = {ME_EXPORT: frozenset({"POST"})}
COLLECTION_PATH = f"/{ENTITY_SET}"
MAX_BODY = 64 * 1024  # an exportPersonalData body is one URL


def _invalid_guid(object_id: str) -> str:
    return f"The specified object-id: {object_id} in the request uri is an invalid Guid."


class GraphProfileMiddleware:
    def __init__(self, app: ASGIApp, storage: StorageConfig):
        self.app = app
        self.storage = storage

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match: RouteMatch = scope[ROUTE]
        route = match.route
        if route is ME_EXPORT and scope["method"] == "POST":
            principal: Principal | None = scope["state"].get("principal")
            if principal is None or EXPORT not in principal.permissions:
                await _error(scope, receive, send, 403, "Forbidden", _FORBIDDEN)
                return
            subject = principal.subject
            path = match.api_root + USER_EXPORT.path.replace("{user_id}", subject)
            scope["path"] = path
            scope["raw_path"] = path.encode()
            scope[ROUTE] = match = RouteMatch(USER_EXPORT, subject, True, False, match.api_root)
            route = USER_EXPORT
        if route is ENTITY and match.key is not None:
            await self._operation(scope, receive, _operations_as_graph(send), match.key)
        elif route is COUNT:  # `$count` is no GUID to Graph either
            await self._operation(scope, receive, send, "$count")
        elif route is USER_EXPORT and match.key is not None:
            await self._export(scope, receive, send, match.key)
        elif route is not None and route.path == COLLECTION_PATH:
            await self.app(scope, receive, _operations_as_graph(send))
        else:
            await self.app(scope, receive, send)

    async def _operation(self, scope: Scope, receive: Receive, send: Send, key: str) -> None:
        if not _is_guid(key):
            await _error(scope, receive, send, 400, "BadRequest", _invalid_guid(key))
            return
        replaced = False

        async def not_found_as_graph(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] == 404:
                replaced = True
                await _error(scope, receive, send, 400, "OperationNotFound", _NOT_FOUND)
            elif not replaced:
                await send(message)

        await self.app(scope, receive, not_found_as_graph)

    async def _export(self, scope: Scope, receive: Receive, send: Send, user_id: str) -> None:
        if not _is_guid(user_id):
            await _error(scope, receive, send, 400, "InvalidInput", _invalid_guid(user_id))
            return
        body, replay = await _buffered(receive)
        try:
            location = orjson.loads(body).get("storageLocation") if body else None
        except (orjson.JSONDecodeError, AttributeError):
            location = None  # the route answers malformed bodies
        from datapolicy.engine.targets.azure import azure_target  # its SDK: engine/targets

        if (
            isinstance(location, str)
            and location
            and azure_target(location, self.storage.azure) is None
        ):
            # Named as every refused location is (engine/targets/base.py, docs/security.md).
            await _error(
                scope,
                receive,
                send,
                400,
                "StorageLocationNotAzureBlob",
                _NOT_BLOB,
                "storageLocation",
            )
            return
        await self.app(scope, replay, send)


_FORBIDDEN = (
    "Access is denied to the requested resource. The user might not have enough permission."
)
_NOT_FOUND = "Cannot find any operations with the input Id."
_NOT_BLOB = "Storage destination must be an azure blob container."


def _operations_as_graph(send: Send) -> Send:
    """`send` for an answer of operations (an entity or a page of them): a successful JSON body
    is sent with each entity's `status` and `progress` as Graph shows them."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def as_graph(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            headers = MutableHeaders(raw=list(message.get("headers", [])))
            json = headers.get("content-type", "").startswith("application/json")
            if message["status"] in (200, 201) and json:
                start = message
                return
        elif message["type"] == "http.response.body" and start is not None:
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = orjson.dumps(_as_graph(orjson.loads(b"".join(chunks))))
            headers = MutableHeaders(raw=list(start.get("headers", [])))
            headers["content-length"] = str(len(body))
            await send({**start, "headers": headers.raw})
            await send({"type": "http.response.body", "body": body})
            return
        await send(message)

    return as_graph


def _as_graph(body: dict[str, Any]) -> dict[str, Any]:
    for item in body["value"] if isinstance(body.get("value"), list) else [body]:
        if isinstance(item.get("status"), str):
            item["status"] = graph_profile_status(item["status"])
        if isinstance(item.get("progress"), int | float):
            item["progress"] = item["progress"] / PROGRESS_SCALE
    return body


def _is_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The request body (up to MAX_BODY; the rest is left for the route to refuse), and a
    `receive` that hands it to the route again."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more and size <= MAX_BODY:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        more = message.get("more_body", False)
    body = b"".join(chunks)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return body, replay


async def _error(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    code: str,
    message: str,
    target: str | None = None,
) -> None:
    response = error_response(Request(scope), status, code, message, target=target)
    await response(scope, receive, send)
