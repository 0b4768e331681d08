"""The hot read, served below Starlette: `GET /v1.0/dataPolicyOperations/{id}` (under `/beta`
too, and with the key in parentheses: whatever the route table matches as the entity route).

Clients poll this route while their export runs, so it carries most of the traffic. Measured at
a million operations, Starlette's request, routing and response objects cost more than the
database read and the JSON together (docs/benchmarks.md). The request pipeline
(web/middleware/pipeline.py) hands it the plain case (the route table's entity route, GET, no query
string) and it answers when there is no conditional header, with exactly the bytes and headers the
routed endpoint would send; everything else, errors included, goes on to the router, so the
behaviour has one definition: `tests/web` compares the two paths.

Bodies it has sent are kept in a `ReadCache` (web/hot_path/readcache.py), which drops an
operation's body as soon as a commit changes its row, so a cached body is never older than the
request. Every body served, from the cache or not, leaves an `operation.read` audit entry,
through the audit buffer (web/middleware/audit.py): the audit trail is not in the store's SQLite
file, so its commits cost the cache nothing.
"""

from __future__ import annotations

import functools

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from datapolicy.errors import NotFound, Unavailable
from datapolicy.model import etag_of
from datapolicy.store import OperationStore
from datapolicy.store.audit import AuditAction
from datapolicy.web.errors import on_datapolicy_error
from datapolicy.web.hot_path.readcache import ReadCache, read_cache_for
from datapolicy.web.middleware.audit import RequestAudit
from datapolicy.web.responses import ODATA_JSON
from datapolicy.web.routes.roots import ROUTE, origin_of
from datapolicy.web.routes.serialize import COLUMN, context_url, entity_json

_CONDITIONAL = (b"if-none-match", b"if-match", b"if-modified-since")
_CONTENT_TYPE = ODATA_JSON.encode()
_VERSION, _USER_ID = COLUMN["version"], COLUMN["user_id"]


class EntityReadPath:
    def __init__(
        self,
        store: OperationStore,
        audit: RequestAudit,
        cache: ReadCache | None = None,
    ):
        self.store = store
        self.audit = audit  # an operation.read entry per body served, buffered
        # None when the store's database offers no cheap way to see commits (not SQLite).
        self.cache = cache if cache is not None else read_cache_for(store.database)
        # SQLite: read on the event loop; PostgreSQL: in a thread (web/routes/operations.py
        # `read_operation` says why).
        self.reads_inline = store.database.blocking_reads_are_cheap

    async def serve(self, scope: Scope, receive: Receive, send: Send, operation_id: str) -> bool:
        """Answer a GET of `operation_id` without a query string; False (nothing sent) when it
        has a conditional header or the operation does not exist: the router answers those."""
        host = None
        for name, value in scope["headers"]:
            if name in _CONDITIONAL:
                return False
            if name == b"host" and host is None:
                host = value
        cache = self.cache
        cached = None if cache is None else cache.get(operation_id)
        if cached is None:
            try:
                if self.reads_inline:
                    row = self.store.get_row(operation_id)
                else:
                    row = await run_in_threadpool(self.store.get_row, operation_id)
            except NotFound:
                return False  # the routed path renders the 404
            except Unavailable as exc:  # rendered here: the routed path would wait again
                response = await on_datapolicy_error(Request(scope), exc)
                await response(scope, receive, send)
                return True
            # The body without its first member, `@odata.context`, which depends on the URL
            # the client used: orjson writes members in order and without spaces. Written
            # from the row, as a list page's entities are: no `Operation` is made.
            cached = (entity_json(row)[1:], etag_of(row[_VERSION]).encode(), row[_USER_ID])
            if cache is not None:
                cache.put(operation_id, cached)
        self.audit.later(
            scope, AuditAction.OPERATION_READ, user_id=cached[2], operation_id=operation_id
        )
        server = scope.get("server")
        body = (
            _context_member(
                scope.get("scheme", "http"), host, server and tuple(server), scope[ROUTE].api_root
            )
            + cached[0]
        )
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", _CONTENT_TYPE),
                    (b"etag", cached[1]),
                    (b"odata-version", b"4.0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return True


@functools.lru_cache(maxsize=256)
def _context_member(
    scheme: str, host: bytes | None, server: tuple[str, int] | None, api_root: str
) -> bytes:
    """`{"@odata.context":"...",`: how an entity body starts for a request with this scheme,
    Host header, server address and API root (the service root is the URL the client used)."""
    root = origin_of(scheme, host, server) + api_root
    return orjson.dumps({"@odata.context": context_url(root, None, entity=True)})[:-1] + b","
