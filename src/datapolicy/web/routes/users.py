"""`/users`: the user directory in Graph's shape, and the `exportPersonalData` action."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from datapolicy.auth.permissions import ERASE, EXPORT
from datapolicy.engine import ExportService, User, UserDirectory
from datapolicy.engine.directory import UserPage
from datapolicy.engine.service import UnknownUser
from datapolicy.engine.sources.base import SourceError
from datapolicy.engine.targets import StorageLocationError
from datapolicy.errors import Forbidden, InvalidRequest, QueryOptionError, Unavailable
from datapolicy.model import ENTITY_SET, Operation
from datapolicy.odata.entity import USER_PROPERTIES, USERS
from datapolicy.odata.options import (
    COUNT_OPTIONS,
    ENTITY_OPTIONS,
    LIST_OPTIONS,
    QueryOptions,
    parse_query_options,
)
from datapolicy.store.audit import AuditAction
from datapolicy.web.middleware.audit import audit_of
from datapolicy.web.responses import json_response
from datapolicy.web.routes.advanced_queries import (
    HEADER,
    check_count_segment,
    check_list,
)
from datapolicy.web.routes.operations import (
    account_denial,
    caller_of,
    idempotency_key,
    next_link,
    with_maxpagesize,
)
from datapolicy.web.routes.payloads import read_json_object
from datapolicy.web.routes.roots import service_root

T = TypeVar("T")

RETRY_AFTER_SECONDS = 60  # what Graph sends with the 202
USERS_SET = "users"
USER_FIELDS = tuple(USER_PROPERTIES)
# Graph's users take no $skip: pages continue by @odata.nextLink only.
USER_LIST_OPTIONS = LIST_OPTIONS - {"skip"}
USER_COUNT_OPTIONS = COUNT_OPTIONS
USER_ENTITY_OPTIONS = ENTITY_OPTIONS

log = logging.getLogger(__name__)


def _exports(request: Request) -> ExportService:
    exports: ExportService = request.app.state.exports
    return exports


def _user_options(request: Request, allowed: set[str]) -> dict[str, str]:
    """The actions' check that no `$` option is given (custom options are ignored)."""
    options: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        canonical = name.lower().removeprefix("$")
        if not name.startswith("$") and canonical not in allowed:
            continue
        if canonical not in allowed:
            raise QueryOptionError(f"Query option '{name[:60]}' is not supported on users.")
        if canonical in options:
            raise QueryOptionError(f"Query option '${canonical}' is given more than once.")
        options[canonical] = value
    return options


def _options(request: Request, allowed: frozenset[str]) -> QueryOptions:
    return parse_query_options(
        request.query_params.multi_items(),
        allowed,
        request.app.state.limits.max_page_size,
        USERS,
    )


def _graph_profile(request: Request) -> bool:
    return bool(getattr(request.app.state, "profile", None) == "graph")


def _fields(options: QueryOptions) -> tuple[str, ...]:
    return USER_FIELDS if options.select is None else tuple(p.name for p in options.select)


def _user_json(user: User, fields: tuple[str, ...]) -> dict[str, object]:
    data = user.as_json()
    return {"@odata.type": "#microsoft.graph.user", **{f: data[f] for f in fields}}


def _context(request: Request, fields: tuple[str, ...], entity: bool) -> str:
    selection = "" if fields == USER_FIELDS else "(" + ",".join(fields) + ")"
    return f"{service_root(request)}/$metadata#users{selection}" + ("/$entity" if entity else "")


async def _ask(request: Request, call: Callable[[UserDirectory], T], empty: T) -> T:
    """`call` on the configured directory in a thread (`empty` without a directory); a
    directory that cannot be read is a 503, its cause logged, not shown to the client."""
    directory = _exports(request).context.directory
    if directory is None:
        return empty
    try:
        return await run_in_threadpool(call, directory)
    except SourceError as exc:
        log.warning("the user directory cannot be read: %s", exc)
        raise Unavailable("The user directory cannot be read now; try again later.") from None


async def list_users(request: Request) -> Response:
    """Graph's `GET /users`: `$filter`, `$search`, `$orderby`, `$select`, `$top`, `$count`,
    `Prefer: odata.maxpagesize`, pages continued by `@odata.nextLink` (a keyset `$skiptoken`,
    as operations' lists)."""
    options = _options(request, USER_LIST_OPTIONS)
    if options.top == 0:  # Graph's users take 1 to 999
        raise QueryOptionError(
            f"$top must be an integer from 1 to {request.app.state.limits.max_page_size}."
        )
    if _graph_profile(request):
        options = check_list(options, request.headers.get(HEADER))
    options, applied = with_maxpagesize(request, options)
    size = options.page_size
    page = await _ask(
        request, lambda directory: directory.query(options, size), UserPage([], None, 0)
    )
    audit_of(request).later(request.scope, AuditAction.USER_READ)
    fields = _fields(options)
    root = service_root(request)
    body: dict[str, object] = {"@odata.context": _context(request, fields, entity=False)}
    if options.count:
        body["@odata.count"] = page.count
    body["value"] = [_user_json(user, fields) for user in page.users]
    if page.next is not None:
        body["@odata.nextLink"] = next_link(root, options, page.next, USERS_SET)
    return json_response(body, headers=None if applied is None else {"Preference-Applied": applied})


async def count_users(request: Request) -> Response:
    """Graph's `GET /users/$count`: how many users match `$filter` and `$search`, as text."""
    if _graph_profile(request):
        check_count_segment(request.headers.get(HEADER))
    options = _options(request, USER_COUNT_OPTIONS)
    if _graph_profile(request):
        options = check_list(options, request.headers.get(HEADER))
    total = await _ask(request, lambda directory: directory.count(options), 0)
    audit_of(request).later(request.scope, AuditAction.USER_READ)
    return PlainTextResponse(str(total), headers={"OData-Version": "4.0"})


async def get_user(request: Request) -> Response:
    """Graph's `GET /users/{id | userPrincipalName}`."""
    options = _options(request, USER_ENTITY_OPTIONS)
    key: str = request.path_params["user_id"]
    user = await _ask(request, lambda directory: directory.find(key), None)
    if user is None:
        raise UnknownUser(
            f"Resource '{key[:100]}' does not exist or one of its queried "
            "reference-property objects are not present."
        )
    audit_of(request).later(request.scope, AuditAction.USER_READ, user_id=user.id)
    fields = _fields(options)
    return json_response(
        {"@odata.context": _context(request, fields, entity=True), **_user_json(user, fields)}
    )


async def export_personal_data(request: Request) -> Response:
    """Graph's action: 202 with no body, `Location` (and `Operation-Location`) naming the new
    dataPolicyOperation, and `Retry-After`."""
    document = await _action_parameters(request, "exportPersonalData", ("storageLocation",))
    location = document.get("storageLocation")
    if not isinstance(location, str) or not location.strip():
        raise StorageLocationError("Storage Location is not valid.")
    audit = audit_of(request)
    operation, created = await run_in_threadpool(
        functools.partial(
            _exports(request).start,
            request.path_params["user_id"],
            location,
            idempotency_key(request),
            audit.recorder(request.scope, AuditAction.OPERATION_STARTED),
            caller=caller_of(request),
        )
    )
    return _accepted(request, operation, created)


async def erase_personal_data(request: Request) -> Response:
    """datapolicy's action (docs/erasure.md): answered as exportPersonalData is, 202 with the
    new dataPolicyOperation's URL; body `{"dryRun": bool, "storageLocation": str}`, both
    optional. The route asks PersonalData.Erase.All; a dry run asks User.Export.All too, as
    its package holds the person's rows."""
    parameters = ("dryRun", "storageLocation")
    _refuse_parameters_in_query(request, "erasePersonalData", parameters)
    document = await _action_parameters(
        request, "erasePersonalData", parameters, body_optional=True
    )
    dry_run = document.get("dryRun", False)
    if not isinstance(dry_run, bool):
        raise InvalidRequest("The parameter 'dryRun' must be true or false.")
    if dry_run and EXPORT not in request.scope["state"]["principal"].permissions:
        account_denial(request)
        raise Forbidden(
            "Insufficient privileges to complete the operation. A dry run's package holds the "
            f"person's rows, as an export does: it needs the {EXPORT} permission besides {ERASE}."
        )
    location = document.get("storageLocation")
    if location is not None and (not isinstance(location, str) or not location.strip()):
        raise StorageLocationError("Storage Location is not valid.")
    audit = audit_of(request)
    operation, created = await run_in_threadpool(
        functools.partial(
            _exports(request).start_erasure,
            request.path_params["user_id"],
            location,
            dry_run,
            idempotency_key(request),
            audit.recorder(request.scope, AuditAction.ERASURE_REQUESTED),
            caller=caller_of(request),
        )
    )
    return _accepted(request, operation, created)


def _refuse_parameters_in_query(request: Request, action: str, parameters: tuple[str, ...]) -> None:
    """A 400 for an action's parameter given in the query string, where it would be ignored:
    `erasePersonalData?dryRun=true` with no body would otherwise erase for real. (Graph's own
    action, exportPersonalData, ignores custom query options, as Graph does.)"""
    names = {parameter.lower(): parameter for parameter in parameters}
    for name in request.query_params:
        parameter = names.get(name.lower().removeprefix("$"))
        if parameter is not None:
            raise InvalidRequest(
                f"The parameter '{parameter}' of {action} is given in the JSON body, not in the "
                f'query string: POST {{"{parameter}": ...}}.'
            )


async def _action_parameters(
    request: Request, action: str, accepted: tuple[str, ...], *, body_optional: bool = False
) -> dict[str, Any]:
    """An action's body (a JSON object; with `body_optional`, none is `{}`), once the request
    is known to have no query option and the body only the action's parameters."""
    _user_options(request, set())
    if body_optional and not (await request.body()).strip():
        return {}
    document = await read_json_object(request)
    unknown = set(document) - set(accepted)
    if unknown:
        raise InvalidRequest(
            f"The parameter '{sorted(unknown)[0][:60]}' is not a parameter of the action "
            f"{action}; it takes {' and '.join(accepted)}."
        )
    return document


def _accepted(request: Request, operation: Operation, created: bool) -> Response:
    """Graph's answer to an action that starts an operation: 202 with no body, `Location`
    (and `Operation-Location`) naming the new dataPolicyOperation, and `Retry-After`."""
    audit_of(request).started(request.scope, operation, created)
    url = f"{service_root(request)}/{ENTITY_SET}/{operation.id}"
    return Response(
        status_code=202,
        headers={
            "Location": url,
            "Operation-Location": url,
            "Retry-After": str(RETRY_AFTER_SECONDS),
        },
    )
