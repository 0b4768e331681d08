"""The hot read, served below Starlette: `GET /v1.0/dataPolicyOperations/{id}`.

Clients poll this route while their export runs, so it carries most of the traffic. Measured at
a million operations, Starlette's request, routing and response objects cost more than the
database read and the JSON together (docs/benchmarks.md). This ASGI middleware answers the
plain case itself (GET, no query string, no conditional headers) with exactly the bytes and
headers the routed endpoint would send, and passes everything else, errors included, on to the
app, so the behaviour has one definition: `tests/web` compares the two paths.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from datapolicy.errors import NotFound
from datapolicy.model import ENTITY_SET
from datapolicy.store import OperationStore
from datapolicy.web.operations import API_ROOT, service_root_of
from datapolicy.web.responses import ODATA_JSON
from datapolicy.web.serialize import context_url, entity

_PREFIX = f"{API_ROOT}/{ENTITY_SET}/"
_CONDITIONAL = (b"if-none-match", b"if-match", b"if-modified-since")


class EntityReadPath:
    def __init__(self, app: ASGIApp, store: OperationStore):
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        operation_id = _plain_entity_read(scope)
        if operation_id is None:
            await self.app(scope, receive, send)
            return
        try:
            operation = self.store.get(operation_id)
        except NotFound:
            await self.app(scope, receive, send)  # the routed path renders the 404
            return
        root = service_root_of(scope)
        body = orjson.dumps(
            {"@odata.context": context_url(root, None, entity=True), **entity(operation, None)}
        )
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", ODATA_JSON.encode()),
                    (b"etag", operation.etag.encode()),
                    (b"odata-version", b"4.0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _plain_entity_read(scope: Scope) -> str | None:
    """The operation id if this is a plain GET of one operation, else None."""
    if scope["type"] != "http" or scope["method"] != "GET" or scope.get("query_string"):
        return None
    path: str = scope["path"]
    if not path.startswith(_PREFIX):
        return None
    operation_id = path[len(_PREFIX) :]
    if not operation_id or "/" in operation_id or operation_id.startswith("$"):
        return None
    if any(name in _CONDITIONAL for name, _ in scope["headers"]):
        return None
    return operation_id
