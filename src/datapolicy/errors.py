"""Every exception datapolicy raises, in three families: Graph's errors, which the API answers
with a status and Graph code; startup errors, which stop a process before it serves; and export
errors, which end an export attempt. Classes live here unless they belong to one module (the
module is named). The tree::

    Exception
    ├── DatapolicyError               Graph's errors: the API answers with the status, the code
    │   │                             and the message (web/errors.py chooses the status by class)
    │   ├── InvalidRequest         400  the request is malformed or asks for something not allowed
    │   │   ├── QueryOptionError   400  an OData query option is unknown or malformed
    │   │   └── StorageLocationError 400  engine/targets/base.py: a storageLocation not usable
    │   ├── Unauthenticated        401  no bearer token, or one that fails validation
    │   ├── Forbidden              403  a valid token without the permission the route needs
    │   ├── NotFound               404  the addressed entity does not exist
    │   │   ├── UnknownUser        404  engine/service.py: no such user in the directory
    │   │   └── PackageNotAvailable 404  engine/service.py: no package on this server's disk
    │   ├── Conflict               409  the entity's state does not allow the change
    │   ├── PreconditionFailed     412  If-Match named an ETag the entity no longer has
    │   ├── TooManyRequests        429  a client over its rate limit, with Retry-After
    │   ├── Unavailable            503  something the answer depends on cannot be reached now
    │   │   └── AuditUnavailable   503  store/audit/log.py: the audit trail cannot take an entry now
    │   └── HTTPError            (any)  web/errors.py: refused by the HTTP layer (media type,
    │                                   body size, method), with its own status
    ├── StartupError                  a process cannot start (or a command cannot open what it
    │   │                             needs): `datapolicy` prints the message and exits 1, in
    │   │                             one place (cli/__init__.py)
    │   ├── ConfigError                 config.py: the configuration cannot be used
    │   │   ├── DatabaseURLError        store/database.py: a store URL it cannot use
    │   │   └── ScenarioFileError       scenarios/preset.py: a `serve --scenarios-file`
    │   ├── SigningKeyError             a key file in the data directory cannot be used
    │   ├── StoreUnreachable            the operation store cannot be reached to open it
    │   ├── MigrationFailed             the store answered, but its schema cannot be migrated
    │   └── TlsError                    tls.py: a certificate or key `serve` was given
    ├── ExportError                   an export attempt cannot go on: the worker records the
    │   │                             message on the operation, and retries the export after
    │   │                             backoff unless `permanent` (engine/retrypolicy.py)
    │   ├── SourceError                 engine/sources/base.py: a source cannot be read
    │   │   └── ErasureFailed             engine/erasure/run.py: a source failed mid-erasure
    │   ├── StorageError                engine/targets/base.py: writing to the storage failed
    │   └── PermanentError              engine/worker.py: no retry can fix it; a code of its own
    ├── Cancelled                     engine/exporter.py: not a failure, the signal that an
    │                                 export must stop (deleted, lease lost, shutting down)
    ├── PersonTableError              discovery/person.py: `discover` finds no table that can
    │                                 be the person table, or the one named cannot be
    ├── DatabaseNotFound              discovery/schema.py: the SQLite file `discover` is given
    │                                 does not exist (and is not created)
    ├── ValueError                    the standard library's, for what `verify --erased` is given:
    │   ├── NotAReceipt                 engine/erasure/checks.py: a receipt.json it will not read
    │   └── NotAKey                     engine/erasure/checks.py: not a JSON array of texts
    └── outside the service, for its clients:
        ├── click.ClickException
        │   └── ApiError                cli/client.py: the API answered the CLI with an error
        ├── CheckFailed                 cli/config.py: `config check` found something wrong
        ├── CheckWarning                cli/config.py: `config check` found something likely unmeant
        └── ScenarioError               testing/scenarios.py: the scenario admin API refused

A startup error is not a Graph error: no client ever sees it, so it has no status and no code.
Graph's `Unavailable` is what the store raises when it cannot answer a request now.
"""

from __future__ import annotations

import math

# Graph's own message for TooManyRequests.
THROTTLED = (
    "Client application has been throttled and should not attempt to repeat the request "
    "until an amount of time has elapsed."
)


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


class TooManyRequests(DatapolicyError):
    """A client over its rate limit, as Graph throttles (web/middleware/ratelimit.py).
    `retry_after`: the `Retry-After` header, `wait` in whole seconds rounded up (at least 1), so
    that a client that waits this long is let through."""

    code = "TooManyRequests"

    def __init__(self, wait: float, message: str = THROTTLED):
        super().__init__(message)
        self.retry_after = max(1, math.ceil(wait))


class Unavailable(DatapolicyError):
    code = "serviceNotAvailable"


class StartupError(Exception):
    """A process cannot start, or a command cannot open what it needs; the message says what
    and where, for the operator, and never holds a password."""


class SigningKeyError(StartupError):
    """A key file in the data directory (the token signing key, the audit trail's key) cannot
    be used: readable by others, or not a P-256 private key."""


class StoreUnreachable(StartupError):
    """The operation store cannot be reached: the database refused or dropped the connection,
    or could not be opened."""


class MigrationFailed(StartupError):
    """The operation store answered, but bringing its schema to the newest revision failed."""


class ExportError(Exception):
    """An export attempt cannot go on. The message says what and where, without credentials.
    `permanent`: another attempt would fail the same way, so the worker fails the operation at
    once instead of retrying it after backoff."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent
