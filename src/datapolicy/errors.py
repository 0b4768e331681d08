"""Errors that the store, the query layer and (later) the engine raise, with Graph's error codes.

Each error carries the Graph `code` and a message meant for the client; the web layer only
chooses the HTTP status from the class. The hierarchy::

    DatapolicyError
    ├── InvalidRequest          400  the request is malformed or asks for something not allowed
    │   └── QueryOptionError    400  an OData query option is unknown or malformed
    ├── Unauthenticated         401  no bearer token, or one that fails validation
    ├── Forbidden               403  a valid token without the permission the route needs
    ├── NotFound                404  the addressed entity does not exist
    ├── Conflict                409  the entity's state does not allow the change
    ├── PreconditionFailed      412  If-Match named an ETag the entity no longer has
    └── Unavailable             503  something the answer depends on cannot be reached now
"""

from __future__ import annotations


class DatapolicyError(Exception):
    code = "generalException"

    def __init__(self, message: str, *, code: str | None = None, target: str | None = None):
        super().__init__(message)
        self.message = message
        self.target = target
        if code is not None:
            self.code = code


class InvalidRequest(DatapolicyError):
    code = "BadRequest"


class QueryOptionError(InvalidRequest):
    code = "BadRequest"


class Unauthenticated(DatapolicyError):
    """The message says which check failed, and never contains the token."""

    code = "InvalidAuthenticationToken"


class Forbidden(DatapolicyError):
    code = "Authorization_RequestDenied"


class NotFound(DatapolicyError):
    code = "ResourceNotFound"


class Conflict(DatapolicyError):
    code = "Conflict"


class PreconditionFailed(DatapolicyError):
    code = "PreconditionFailed"


class Unavailable(DatapolicyError):
    code = "serviceNotAvailable"
