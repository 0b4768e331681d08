"""Graph's error body, and the mapping from datapolicy's errors to HTTP statuses.

Every error the service returns has this shape, which the Graph SDKs parse into `ODataError`::

    {"error": {"code": "...", "message": "...",
               "innerError": {"date": "...", "request-id": "...", "client-request-id": "..."}}}

plus `target`, the request's property or parameter at fault, for an error that names one
(`storageLocation` for a location refused: engine/targets/base.py `StorageLocationError`).

`innerError` must be spelled in camel case: the Python SDK ignores `innererror`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from datapolicy.errors import (
    Conflict,
    DatapolicyError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
)
from datapolicy.web.responses import json_response

_STATUS: dict[type[DatapolicyError], int] = {
    InvalidRequest: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PreconditionFailed: 412,
    TooManyRequests: 429,
    Unavailable: 503,
}

# A 503's Retry-After: outages (the store failing over, a restart) last seconds, and clients
# that come back sooner only add load; Graph SDKs honour the header.
RETRY_AFTER_S = 5

# Codes and messages for errors that Starlette raises itself (routing, methods).
_HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "The request is not valid."),
    404: ("ResourceNotFound", "The requested resource does not exist."),
    405: ("MethodNotAllowed", "The HTTP method is not allowed on this resource."),
    408: ("RequestTimeout", "The request body did not arrive in time."),
    413: ("RequestEntityTooLarge", "The request body is too large."),
    415: ("UnsupportedMediaType", "The request body must be application/json."),
}


class HTTPError(DatapolicyError):
    """An error that only makes sense at the HTTP layer (media type, body size, methods)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message, code=code or _HTTP_CODES.get(status, ("BadRequest",))[0])
        self.status = status
        self.headers = headers or {}


def status_of(error: DatapolicyError) -> int:
    if isinstance(error, HTTPError):
        return error.status
    for cls in type(error).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 500


def headers_of(error: DatapolicyError) -> dict[str, str] | None:
    """The headers an error's class implies: `Retry-After` for a 429 and a 503."""
    if isinstance(error, HTTPError):
        return error.headers
    if isinstance(error, TooManyRequests):
        return {"Retry-After": str(error.retry_after)}
    if isinstance(error, Unavailable):
        return {"Retry-After": str(RETRY_AFTER_S)}
    return None


def render(
    request: Request, error: DatapolicyError, headers: dict[str, str] | None = None
) -> Response:
    """Graph's error body for `error`, with the status and headers its class maps to (and
    `headers` besides)."""
    implied = headers_of(error)
    if headers:
        implied = {**(implied or {}), **headers}
    return error_response(
        request, status_of(error), error.code, error.message, implied, target=error.target
    )


def method_not_allowed(request: Request, allow: str = "GET, HEAD") -> Response:
    """Graph's 405, for the resources answered outside the router (probes, /metrics)."""
    code, message = _HTTP_CODES[405]
    return error_response(request, 405, code, message, headers={"Allow": allow})


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    details: list[dict[str, str]] | None = None,
    *,
    target: str | None = None,
) -> Response:
    """Graph's error body; `target` names what is at fault, `details` is its list of
    `{code, message, target}` for errors with several causes."""
    state = request.scope.get("state", {})
    request_id = state.get("request_id", "")
    error: dict[str, object] = {"code": code, "message": message}
    if target is not None:
        error["target"] = target
    if details:
        error["details"] = details
    error["innerError"] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": request_id,
        "client-request-id": state.get("client_request_id", request_id),
    }
    return json_response({"error": error}, status=status, headers=headers)


async def on_datapolicy_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DatapolicyError)
    return render(request, exc)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code, message = _HTTP_CODES.get(exc.status_code, ("BadRequest", str(exc.detail)))
    if exc.status_code == 404:  # a path outside the API roots (web/routes/table.py)
        message = f"Resource not found for the segment '{request.url.path}'."
    return error_response(request, exc.status_code, code, message, exc.headers)
