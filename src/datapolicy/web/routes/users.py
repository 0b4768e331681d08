"""`/users`: the user directory in Graph's shape, and the `exportPersonalData` action."""

from __future__ import annotations

import base64
import binascii
import functools
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from datapolicy.engine import ExportService, User
from datapolicy.engine.service import UnknownUser
from datapolicy.engine.targets import StorageLocationError
from datapolicy.errors import InvalidRequest, QueryOptionError
from datapolicy.model import ENTITY_SET, Operation
from datapolicy.odata.options import DEFAULT_PAGE_SIZE
from datapolicy.store.audit import AuditAction
from datapolicy.web.middleware.audit import audit_of
from datapolicy.web.responses import json_response
from datapolicy.web.routes.operations import caller_of, idempotency_key
from datapolicy.web.routes.payloads import read_json_object
from datapolicy.web.routes.roots import service_root

RETRY_AFTER_SECONDS = 60  # what Graph sends with the 202
USER_FIELDS = ("id", "displayName", "mail", "userPrincipalName")


def _exports(request: Request) -> ExportService:
    exports: ExportService = request.app.state.exports
    return exports


def _user_options(request: Request, allowed: set[str]) -> dict[str, str]:
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


def _select(options: dict[str, str]) -> tuple[str, ...]:
    if "select" not in options:
        return USER_FIELDS
    chosen = tuple(dict.fromkeys(part.strip() for part in options["select"].split(",")))
    for name in chosen:
        if name not in USER_FIELDS:
            raise QueryOptionError(
                f"Could not find a property named '{name[:60]}' on type 'microsoft.graph.user'."
            )
    return chosen


def _user_json(user: User, fields: tuple[str, ...]) -> dict[str, object]:
    data = user.as_json()
    return {"@odata.type": "#microsoft.graph.user", **{f: data[f] for f in fields}}


def _context(request: Request, fields: tuple[str, ...], entity: bool) -> str:
    selection = "" if fields == USER_FIELDS else "(" + ",".join(fields) + ")"
    return f"{service_root(request)}/$metadata#users{selection}" + ("/$entity" if entity else "")


def _directory_user(request: Request, user_id: str) -> User:
    directory = _exports(request).context.directory
    user = directory.get(user_id) if directory is not None else None
    if user is None:
        raise UnknownUser(
            f"Resource '{user_id[:100]}' does not exist or one of its queried "
            "reference-property objects are not present."
        )
    return user


async def list_users(request: Request) -> Response:
    options = _user_options(request, {"top", "skiptoken", "select"})
    fields = _select(options)
    size = DEFAULT_PAGE_SIZE
    if "top" in options:
        top = options["top"]
        # ASCII digits, and few: isdigit() alone admits "²", and int() refuses it and any
        # number of over 4300 digits with a ValueError (a 500).
        valid = top.isascii() and top.isdigit() and len(top) <= 12
        max_top = request.app.state.limits.max_page_size
        if not valid or not 1 <= int(top) <= max_top:
            raise QueryOptionError(f"$top must be an integer from 1 to {max_top}.")
        size = int(top)
    after = _decode_user_token(options["skiptoken"]) if "skiptoken" in options else None
    directory = _exports(request).context.directory
    users = (
        await run_in_threadpool(directory.page, size + 1, after) if directory is not None else []
    )
    audit_of(request).later(request.scope, AuditAction.USER_READ)
    body: dict[str, object] = {
        "@odata.context": _context(request, fields, entity=False),
        "value": [_user_json(user, fields) for user in users[:size]],
    }
    if len(users) > size:
        token = base64.urlsafe_b64encode(users[size - 1].id.encode()).decode().rstrip("=")
        query = "&".join(f"${k}={v}" for k, v in options.items() if k != "skiptoken")
        body["@odata.nextLink"] = (
            f"{service_root(request)}/users?"
            + (query + "&" if query else "")
            + f"$skiptoken={token}"
        )
    return json_response(body)


def _decode_user_token(token: str) -> str:
    try:
        padded = token + "=" * (-len(token) % 4)
        after = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        after = "\x00"
    if "\x00" in after:  # never made by a nextLink (and PostgreSQL's text cannot hold it)
        raise QueryOptionError("The $skiptoken is not valid; follow @odata.nextLink.")
    return after


async def get_user(request: Request) -> Response:
    fields = _select(_user_options(request, {"select"}))
    user = await run_in_threadpool(_directory_user, request, request.path_params["user_id"])
    audit_of(request).later(request.scope, AuditAction.USER_READ, user_id=user.id)
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
    optional."""
    document = await _action_parameters(
        request, "erasePersonalData", ("dryRun", "storageLocation"), body_optional=True
    )
    dry_run = document.get("dryRun", False)
    if not isinstance(dry_run, bool):
        raise InvalidRequest("The parameter 'dryRun' must be true or false.")
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
