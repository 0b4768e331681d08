"""The `/dataPolicyOperations` routes: list, `$count`, create, get, update, delete."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TypeVar
from urllib.parse import quote, urlencode

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from datapolicy.auth.permissions import ERASE
from datapolicy.engine import ExportService
from datapolicy.errors import Forbidden
from datapolicy.model import ENTITY_SET, Operation, OperationType
from datapolicy.odata.options import (
    COUNT_OPTIONS,
    ENTITY_OPTIONS,
    LIST_OPTIONS,
    NO_OPTIONS,
    QueryOptions,
    parse_query_options,
)
from datapolicy.odata.preferences import preferred_page_size
from datapolicy.odata.skiptoken import SkipToken
from datapolicy.store import OperationStore
from datapolicy.store.audit import AuditAction
from datapolicy.store.operations import Precondition
from datapolicy.web.middleware.audit import audit_of
from datapolicy.web.middleware.auth import Authentication
from datapolicy.web.responses import json_response
from datapolicy.web.routes.payloads import parse_new_operation, parse_update, read_json_object
from datapolicy.web.routes.roots import service_root
from datapolicy.web.routes.serialize import JSON_OPTIONS, context_url, entity, entity_rows

_QUERY_SAFE = "$,'()*:"  # left unquoted in next links' query strings
_T = TypeVar("_T")

# List pages and counts of a SQLite store are read by a few threads of their own rather than in
# Starlette's pool (up to 40 threads): a page's query is CPU in this process, and sqlite3 hands
# the GIL back at every row, so forty threads reading pages at once pass the GIL around forty
# ways; a page of 100 cost 1.1 ms of CPU at 64 connections against 0.65 ms on one
# (docs/benchmarks.md). Two threads still read while the event loop serves other requests.
# Also cheaper per call than Starlette's `run_in_threadpool` (anyio's thread hop). A PostgreSQL
# store's reads wait on the network, where Starlette's larger pool is what is wanted.
SQLITE_READ_THREADS = 2
_sqlite_reads = ThreadPoolExecutor(SQLITE_READ_THREADS, thread_name_prefix="store-read")


async def read_in_thread(store: OperationStore, call: Callable[..., _T], *args: object) -> _T:
    """`call(*args)`, a read of `store`, in a worker thread (see `SQLITE_READ_THREADS`), with
    this request's context variables (its ids on the log lines) as Starlette's pool has them."""
    if not store.database.blocking_reads_are_cheap:
        return await run_in_threadpool(call, *args)
    context = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_sqlite_reads, functools.partial(context.run, call, *args))


def _store(request: Request) -> OperationStore:
    store: OperationStore = request.app.state.store
    return store


def _options(request: Request, allowed: frozenset[str]) -> QueryOptions:
    query_string: bytes = request.scope.get("query_string", b"")
    if not query_string:  # the usual GET by id: nothing to parse
        return parse_query_options((), allowed)
    return _parsed_options(query_string, allowed, request.app.state.limits.max_page_size)


# The options of the last few hundred query strings: clients repeat theirs (a list polled, a
# page's next pages), and splitting and parsing one costs as much as the rest of a list
# request's Python outside the rows. Options are immutable (nothing writes to their `raw`); a
# query string that fails to parse is not kept (its error is raised again).
OPTIONS_CACHED = 256


@functools.lru_cache(maxsize=OPTIONS_CACHED)
def _parsed_options(query_string: bytes, allowed: frozenset[str], max_top: int) -> QueryOptions:
    """The options of a query string, split as Starlette's `request.query_params` splits it."""
    return parse_query_options(QueryParams(query_string).multi_items(), allowed, max_top)


async def list_operations(request: Request) -> Response:
    options, applied = with_maxpagesize(request, _options(request, LIST_OPTIONS))
    store = _store(request)
    page = await read_in_thread(store, store.list, options)
    audit_of(request).later(request.scope, AuditAction.OPERATION_LISTED)
    root = service_root(request)
    body: dict[str, object] = {"@odata.context": context_url(root, options.select, entity=False)}
    if page.count is not None:
        body["@odata.count"] = page.count
    body["value"] = entity_rows(page.rows, options.select)
    if page.next is not None:
        body["@odata.nextLink"] = next_link(root, options, page.next)
    headers = None if applied is None else {"Preference-Applied": applied}
    return json_response(body, headers=headers, option=JSON_OPTIONS)


def with_maxpagesize(request: Request, options: QueryOptions) -> tuple[QueryOptions, str | None]:
    """The options of a list (operations', users') with the page size of an `odata.maxpagesize`
    preference, bounded by the server's maximum page size, and the `Preference-Applied` value
    to answer with: from the `Prefer` header, else the one the `$skiptoken` carries on from the
    first page (applied, but not asked for by this request, so not answered). `$top` wins over
    both, as OData says: the client asked for that many."""
    if options.top is not None:
        return options, None
    prefer = [value for name, value in request.scope["headers"] if name == b"prefer"]
    preferred = preferred_page_size(value.decode("latin-1") for value in prefer)
    limit: int = request.app.state.limits.max_page_size
    if preferred is not None:
        name, size = preferred[0], min(preferred[1], limit)
        return replace(options, maxpagesize=size), f"{name}={size}"
    if options.skiptoken is not None and options.skiptoken.maxpagesize is not None:
        return replace(options, maxpagesize=min(options.skiptoken.maxpagesize, limit)), None
    return options, None


def next_link(
    root: str, options: QueryOptions, token: SkipToken, entity_set: str = ENTITY_SET
) -> str:
    """The same query on `entity_set`, continued after the last row served (`$skip` is
    already applied)."""
    return _next_link_before_token(root, entity_set, tuple(options.raw.items())) + quote(
        token.encode(), safe=_QUERY_SAFE
    )


@functools.lru_cache(maxsize=OPTIONS_CACHED)
def _next_link_before_token(root: str, entity_set: str, raw: tuple[tuple[str, str], ...]) -> str:
    """A next link up to its `$skiptoken` value, which is all that changes from page to page
    of a query: quoting the rest again for every page costs more than the token does."""
    pairs = [(f"${name}", value) for name, value in raw if name not in ("skip", "skiptoken")]
    pairs.append(("$skiptoken", ""))
    return f"{root}/{entity_set}?" + urlencode(pairs, quote_via=quote, safe=_QUERY_SAFE)


async def count_operations(request: Request) -> Response:
    options = _options(request, COUNT_OPTIONS)
    store = _store(request)
    total = await read_in_thread(store, store.count, options)
    audit_of(request).later(request.scope, AuditAction.OPERATION_LISTED)
    return PlainTextResponse(str(total), headers={"OData-Version": "4.0"})


async def create_operation(request: Request) -> Response:
    """Start an export: the same engine entry point as /users/{id}/exportPersonalData."""
    _options(request, NO_OPTIONS)
    new = parse_new_operation(await read_json_object(request))
    audit = audit_of(request)
    operation, created = await run_in_threadpool(
        functools.partial(
            _exports(request).start,
            new.user_id,
            new.storage_location,
            idempotency_key(request),
            audit.recorder(request.scope, AuditAction.OPERATION_STARTED),
            caller=caller_of(request),
        )
    )
    audit.started(request.scope, operation, created)
    root = service_root(request)
    return _entity_response(
        root,
        operation,
        None,
        status=201 if created else 200,
        headers={"Location": f"{root}/{ENTITY_SET}/{operation.id}"},
    )


def idempotency_key(request: Request) -> str | None:
    """`Operation-Id`, else `client-request-id`: a retried start carries the same one."""
    for header in ("operation-id", "client-request-id"):
        value = request.headers.get(header, "").strip()
        if value:
            return f"{header}:{value[:150]}"
    return None


def caller_of(request: Request) -> str:
    """Who is calling, as the token says (web/middleware/auth.py): the client application and the
    subject, the scope of its idempotency keys."""
    principal = request.scope["state"]["principal"]
    return orjson.dumps([principal.app_id, principal.subject]).decode()


def _exports(request: Request) -> ExportService:
    exports: ExportService = request.app.state.exports
    return exports


async def read_operation(store: OperationStore, operation_id: str) -> Operation:
    """One operation by id: on the event loop where a read is a local file's microseconds
    (SQLite: a thread hop would cost more than the read), in a worker thread where it is a
    network round trip (PostgreSQL: it would stall every other request meanwhile)."""
    if store.database.blocking_reads_are_cheap:
        return store.get(operation_id)
    return await run_in_threadpool(store.get, operation_id)


async def get_operation(request: Request) -> Response:
    options = _options(request, ENTITY_OPTIONS)
    operation = await read_operation(_store(request), request.path_params["operation_id"])
    audit_of(request).later(
        request.scope,
        AuditAction.OPERATION_READ,
        user_id=operation.user_id,
        operation_id=operation.id,
    )
    if _matches(request.headers.get("if-none-match"), operation):
        return Response(status_code=304, headers={"ETag": operation.etag})
    return _entity_response(service_root(request), operation, options)


async def update_operation(request: Request) -> Response:
    _options(request, NO_OPTIONS)
    store = _store(request)
    operation_id = request.path_params["operation_id"]
    document = await read_json_object(request)
    changes = parse_update(document, await read_operation(store, operation_id))
    # Writes run in a thread (as DELETE does): one may wait for the row, which a worker holds
    # while it publishes. The new location is checked, and prepared once the change is made.
    operation = await _write(
        request,
        _exports(request).update,
        operation_id,
        changes,
        _permitted(request),
        audit_of(request).recorder(request.scope, AuditAction.OPERATION_UPDATED),
    )
    return _entity_response(service_root(request), operation, None)


async def delete_operation(request: Request) -> Response:
    _options(request, NO_OPTIONS)
    operation_id = request.path_params["operation_id"]
    await _write(
        request,
        _store(request).delete,
        operation_id,
        _permitted(request),
        audit_of(request).recorder(request.scope, AuditAction.OPERATION_DELETED),
    )
    return Response(status_code=204)


async def approve_operation(request: Request) -> Response:
    """datapolicy's action (docs/erasure.md): approve an erasure that waits for approval, by a
    principal other than its requester; 204. With If-Match, only the version the approver
    read (412 otherwise)."""
    _options(request, NO_OPTIONS)
    operation_id = request.path_params["operation_id"]
    await _write(
        request,
        _store(request).approve,
        operation_id,
        caller_of(request),
        audit_of(request).recorder(request.scope, AuditAction.ERASURE_APPROVED),
        _precondition(request),
    )
    return Response(status_code=204)


async def _write(
    request: Request, write: Callable[..., _T], operation_id: str, *args: object
) -> _T:
    """`write(operation_id, *args)`, a write to the store, in a thread. A 403 it raises (the
    store's or `_permitted`'s: more than the route's permission was judged) is accounted as the
    authentication middleware accounts its own, on the event loop: the client's budgets, and an
    access.denied entry naming the operation."""
    try:
        return await run_in_threadpool(write, operation_id, *args)
    except Forbidden:
        account_denial(request, operation_id)
        raise


def account_denial(request: Request, operation_id: str | None = None) -> None:
    """A 403 a route judged beyond its permission, accounted as the authentication middleware
    accounts its own, on the event loop: the client's budgets, and an access.denied entry
    (naming `operation_id` if given)."""
    authentication: Authentication = request.app.state.authentication
    authentication.deny(request.scope, request.scope["state"]["principal"], operation_id)


def _permitted(request: Request) -> Precondition:
    """The If-Match precondition of a change or a deletion, after its permission, judged on the
    locked row: changing or deleting an erasure needs PersonalData.Erase.All besides the route's
    User.Export.All (docs/security.md), as deleting cancels it or removes its receipt, and a
    change moves where it goes, which only those who may start one may do."""
    matches = _precondition(request)
    permissions = request.scope["state"]["principal"].permissions

    def permitted(operation: Operation) -> bool:
        if operation.operation_type is OperationType.ERASE and ERASE not in permissions:
            raise Forbidden(
                "Insufficient privileges to complete the operation. Changing or deleting an "
                f"erasure needs the {ERASE} permission."
            )
        return matches(operation)

    return permitted


def _entity_response(
    root: str,
    operation: Operation,
    options: QueryOptions | None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    select = options.select if options else None
    body = {"@odata.context": context_url(root, select, entity=True), **entity(operation, select)}
    return json_response(body, status=status, headers={"ETag": operation.etag, **(headers or {})})


def _precondition(request: Request) -> Precondition:
    header = request.headers.get("if-match")
    if header is None:
        return lambda operation: True
    return lambda operation: _matches(header, operation)


def _matches(header: str | None, operation: Operation) -> bool:
    """Whether an If-Match / If-None-Match header names the operation's current ETag.

    Weak and strong forms compare equal, as OData services treat `W/` tags."""
    if header is None:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or operation.etag.removeprefix("W/") in tags
