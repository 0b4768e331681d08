"""What a client may send in POST and PATCH bodies, and the 400s for everything else.

The server owns an operation's lifecycle: `id`, `submittedDateTime`, `status`, `progress`,
`progressDetail`, `approval`, `operationType`, `dryRun`, `error` and `completedDateTime` are never
taken from a client. A client that echoes one of them back (a GET, modify, PATCH round trip, or an
SDK model with defaults filled in) is not wrong as long as the value is the one the server
would hold anyway; any other value is refused, naming the property.

- POST accepts `userId` (required) and `storageLocation` (optional: the default location).
- PATCH accepts `storageLocation` (a string), while the operation is `notStarted`.
- Both accept `@odata.type` naming this entity type, and ignore other `@odata.*` annotations.

Every JSON body (these, an erasure's, `$batch`'s, `/users`') is refused when an object in it names
a member twice (`{"dryRun": true, "dryRun": false}`): JSON leaves the meaning open (RFC 8259
section 4; I-JSON, RFC 7493, forbids it), parsers differ on which one wins, and a proxy or a
log that reads the other one would disagree with what datapolicy did.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, overload

import orjson
from starlette.requests import Request

from datapolicy.errors import InvalidRequest
from datapolicy.model import (
    ENTITY_TYPE,
    MAX_STORAGE_LOCATION_LENGTH,
    MAX_USER_ID_LENGTH,
    PROPERTIES,
    Approval,
    Operation,
    OperationStatus,
    OperationType,
    ProgressDetail,
)
from datapolicy.web.errors import HTTPError

_CONTROL_CHARACTER = re.compile("[\u0000-\u001f\u007f-\u009f]")

_WRITABLE_ON_CREATE = frozenset({"userId", "storageLocation"})
_WRITABLE_ON_UPDATE = frozenset({"storageLocation"})
_SERVER_ASSIGNED = frozenset({"id", "submittedDateTime"})


@dataclass(frozen=True, slots=True)
class NewOperation:
    user_id: str
    storage_location: str | None


async def read_json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or the right 4xx."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise HTTPError(
            415,
            "The request body must be sent with Content-Type: application/json"
            + (f", not {media_type[:60]}." if media_type else "."),
        )
    # Its size is limited as it arrives, by web/middleware/limits.py: a read past `[limits]
    # max_body_bytes` raises the 413.
    body = await request.body()
    if not body.strip():
        raise InvalidRequest("The request body is empty; a JSON object is required.")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(document, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    _refuse_repeated_members(body)
    return document


def _refuse_repeated_members(body: bytes) -> None:
    """A 400 if an object of `body` (valid JSON: orjson read it) names a member twice. orjson
    keeps the last silently, so the standard library's parser reads it again, to see the
    members in order; a request body is small, and this costs a few microseconds."""
    try:
        json.loads(body, object_pairs_hook=_unique_members)
    except RecursionError:  # deeper than the standard library's parser goes (orjson: 1,024)
        raise InvalidRequest("The request body is nested too deeply.") from None
    except ValueError as exc:  # what the two parsers judge apart: refused, as invalid JSON
        raise InvalidRequest(f"The request body is not valid JSON: {exc}.") from None


def _unique_members(pairs: list[tuple[str, Any]]) -> None:
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise InvalidRequest(
                f"The request body names the member '{name[:60]}' more than once in one object."
            )
        seen.add(name)


def parse_new_operation(document: dict[str, Any]) -> NewOperation:
    _check_properties(document, _WRITABLE_ON_CREATE)
    for name in _SERVER_ASSIGNED & document.keys():
        raise _read_only(name, "it is assigned by the server")
    _require_initial(document, "status", OperationStatus.NOT_STARTED.value)
    _require_initial(document, "completedDateTime", None)
    _require_initial(document, "progressDetail", None)
    _require_initial(document, "approval", None)  # a POST starts an export: it needs none
    _require_initial(document, "operationType", OperationType.EXPORT.value)  # never an erasure
    _require_initial(document, "dryRun", None)  # an erasure's: an export has none
    _require_initial(document, "error", None)
    if "progress" in document and _number(document["progress"], "progress") != 0:
        raise _read_only("progress", "a new operation starts at 0")
    if "userId" not in document:
        raise InvalidRequest("The property 'userId' is required.", target="userId")
    return NewOperation(
        user_id=_string(document["userId"], "userId", MAX_USER_ID_LENGTH, nullable=False),
        storage_location=_storage_location(document),
    )


def parse_update(document: dict[str, Any], current: Operation) -> dict[str, Any]:
    """The changes a PATCH body asks for (only writable properties that really change)."""
    _check_properties(document, _WRITABLE_ON_UPDATE)
    for name, prop in PROPERTIES.items():
        if (
            name in document
            and name not in _WRITABLE_ON_UPDATE
            and not _same(document[name], getattr(current, prop.attribute))
        ):
            raise _read_only(name, "it is owned by the server")
    changes: dict[str, Any] = {}
    if "storageLocation" in document:
        changes["storageLocation"] = _string(
            document["storageLocation"],
            "storageLocation",
            MAX_STORAGE_LOCATION_LENGTH,
            nullable=False,
        )
    return changes


def _check_properties(document: dict[str, Any], writable: frozenset[str]) -> None:
    for name in document:
        if name.startswith("@"):
            if name == "@odata.type" and str(document[name]).lstrip("#") != ENTITY_TYPE:
                raise InvalidRequest(
                    f"The @odata.type '{str(document[name])[:80]}' is not '#{ENTITY_TYPE}'.",
                    target=name,
                )
            continue
        if name not in PROPERTIES:
            raise InvalidRequest(
                f"The property '{name[:80]}' does not exist on type '{ENTITY_TYPE}'. Make sure "
                "to only use property names that are defined by the type.",
                target=name[:80],
            )


def _storage_location(document: dict[str, Any]) -> str | None:
    value = document.get("storageLocation")
    return _string(value, "storageLocation", MAX_STORAGE_LOCATION_LENGTH, nullable=True)


@overload
def _string(value: Any, name: str, max_length: int, *, nullable: Literal[False]) -> str: ...
@overload
def _string(value: Any, name: str, max_length: int, *, nullable: bool) -> str | None: ...
def _string(value: Any, name: str, max_length: int, *, nullable: bool) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(
            f"Invalid value for property '{name}': expected a string"
            + (" or null." if nullable else "."),
            target=name,
        )
    if not value.strip():
        raise InvalidRequest(f"The property '{name}' must not be empty.", target=name)
    if len(value) > max_length:
        raise InvalidRequest(
            f"The property '{name}' is longer than {max_length} characters.", target=name
        )
    if _CONTROL_CHARACTER.search(value):
        raise InvalidRequest(f"The property '{name}' contains control characters.", target=name)
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(
            f"Invalid value for property '{name}': expected a number.", target=name
        )
    return float(value)


def _require_initial(document: dict[str, Any], name: str, initial: Any) -> None:
    if name in document and document[name] != initial:
        raise _read_only(name, f"a new operation's {name} is {initial or 'null'}")


def _same(sent: Any, held: Any) -> bool:
    """Whether a value a client sent equals what the server holds."""
    if held is None or sent is None:
        return sent is None and held is None
    if isinstance(held, OperationStatus):
        same: bool = sent == held.value
        return same
    if isinstance(held, bool):  # not 0 or 1, which equal False and True in Python
        return sent is held
    if isinstance(held, ProgressDetail | Approval):
        same = sent == held.as_json()
        return same
    if isinstance(held, datetime):
        if not isinstance(sent, str):
            return False
        try:
            return datetime.fromisoformat(sent) == held
        except ValueError:
            return False
    if isinstance(held, float):
        return (
            isinstance(sent, int | float)
            and not isinstance(sent, bool)
            and math.isclose(sent, held, rel_tol=0, abs_tol=1e-9)
        )
    same = sent == held
    return same


def _read_only(name: str, reason: str) -> InvalidRequest:
    return InvalidRequest(
        f"The property '{name}' cannot be set by a client: {reason}.", target=name
    )
