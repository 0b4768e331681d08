"""Operation -> Graph JSON, honouring `$select`.

An entity is written from an `Operation` (`entity`) or, for a list page and the read fast path
(web/hot_path/fastpath.py), straight from the rows the store read (`entity_rows`, `entity_json`):
a page of 100 made into operations and then into dictionaries cost more CPU than everything else
in a list request, and the JSON written from a row is kept by the row (`entity_json`). Both give
the same JSON, property by property; the rows' date-times are left to orjson, which writes them
much faster than Python, given `JSON_OPTIONS`.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from datapolicy.model import (
    ENTITY_SET,
    ENTITY_TYPE,
    PROPERTIES,
    Approval,
    ApprovalStatus,
    EdmType,
    Operation,
    OperationError,
    OperationStatus,
    ProgressDetail,
    Property,
    etag_of,
    format_datetime,
    principal_json,
    principal_or_none,
)
from datapolicy.store.operations import ROW, public_error_fields

ODATA_TYPE = f"#{ENTITY_TYPE}"
ALL_PROPERTIES: tuple[Property, ...] = tuple(PROPERTIES.values())
# What orjson needs to write `entity_rows`' date-times (naive, UTC) as `format_datetime` does.
JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC

_EPOCH = datetime(1970, 1, 1)  # naive: UTC
_MICROSECOND = timedelta(microseconds=1)
COLUMN = {column.name: index for index, column in enumerate(ROW)}  # a row's index of each

Row = tuple[Any, ...]


def context_url(service_root: str, select: Sequence[Property] | None, *, entity: bool) -> str:
    """`@odata.context`: the entity set, narrowed to the selected properties if any."""
    selection = "" if select is None else "(" + ",".join(p.name for p in select) + ")"
    return f"{service_root}/$metadata#{ENTITY_SET}{selection}" + ("/$entity" if entity else "")


def entity(operation: Operation, select: Sequence[Property] | None) -> dict[str, Any]:
    """The entity's properties plus `@odata.type` and `@odata.etag` (always, as the schema
    requires `@odata.type` even under `$select`)."""
    body: dict[str, Any] = {"@odata.type": ODATA_TYPE, "@odata.etag": operation.etag}
    for prop in select or ALL_PROPERTIES:
        body[prop.name] = _json_value(getattr(operation, prop.attribute))
    return body


def entity_rows(
    rows: Sequence[Row], select: tuple[Property, ...] | None
) -> orjson.Fragment | list[dict[str, Any]]:
    """`entity` of each row the store read (`store.operations.ROW`'s columns), for orjson with
    `JSON_OPTIONS`: the JSON array already written (`entity_json`) when every property is
    selected, as on a list page without `$select`."""
    if select is None or select == ALL_PROPERTIES:
        return orjson.Fragment(b"[" + b",".join([entity_json(row) for row in rows]) + b"]")
    readers = _readers(select)
    version = COLUMN["version"]
    bodies = []
    for row in rows:
        body: dict[str, Any] = {"@odata.type": ODATA_TYPE, "@odata.etag": etag_of(row[version])}
        for name, read in readers:
            body[name] = read(row)
        bodies.append(body)
    return bodies


# Entities kept written by `entity_json`: ~1 KB each (the row and its JSON), so ~10 MB; a
# hundred list pages of a hundred. Emptied when full (simpler than evicting, and safe from any
# thread: each step is one dictionary operation).
ENTITIES_KEPT = 10_000
_written: dict[object, bytes] = {}
_PROGRESS = COLUMN["progress"]


def entity_json(row: Row) -> bytes:
    """`orjson.dumps(entity_row(row), option=JSON_OPTIONS)`, kept by the row it was written
    from. Writing an entity costs more than anything else in a list page; the same rows are
    served again and again (clients poll their lists, and most operations are finished and no
    longer change). The row is all its JSON depends on, so a kept entry can never be out of
    date: a changed operation is another row. Equal rows give the same bytes, but for a zero
    progress (0.0 equals -0.0, which orjson writes apart): its text is in the key."""
    progress = row[_PROGRESS]
    key: object = row if progress else (row, repr(progress))
    written = _written.get(key)
    if written is None:
        written = orjson.dumps(entity_row(row), option=JSON_OPTIONS)
        if len(_written) >= ENTITIES_KEPT:
            _written.clear()
        _written[key] = written
    return written


def entity_row(row: Row) -> dict[str, Any]:
    """`entity(operation, None)` of the operation in `row`, for orjson with `JSON_OPTIONS`:
    every property, in `PROPERTIES`' order. Written out, as one dictionary display: it is what
    `entity_json` writes for every row it has not kept."""
    (
        id_,
        user_id,
        status,
        progress,
        location,
        submitted,
        completed,
        version,
        code,
        message,
        kind,
        part,
        records,
        nbytes,
        pending,
        approved_by,
        approved_at,
        dry_run,
        requested_by,
    ) = row
    return {
        "@odata.type": ODATA_TYPE,
        "@odata.etag": etag_of(version),
        "id": id_,
        "userId": user_id,
        "status": status,
        "progress": progress,
        "storageLocation": location,
        "submittedDateTime": _date_time(submitted),
        "completedDateTime": _date_time(completed),
        "error": _error_value(status, code, message),
        "operationType": kind,
        # Inline (a page makes a hundred): the three columns are written together.
        "progressDetail": None
        if part is None
        else {"part": part, "records": records, "bytes": nbytes},
        "approval": _approval_value(pending, requested_by, approved_by, approved_at),
        "dryRun": None if dry_run is None else bool(dry_run),
    }


@functools.lru_cache(maxsize=64)
def _readers(select: tuple[Property, ...]) -> tuple[tuple[str, Callable[[Row], Any]], ...]:
    return tuple((prop.name, _reader(prop)) for prop in select)


def _reader(prop: Property) -> Callable[[Row], Any]:
    """How a row gives the property's JSON value (as `_json_value` of the operation's)."""
    if prop.edm_type is EdmType.PUBLIC_ERROR:
        return _error
    if prop.edm_type is EdmType.PROGRESS_DETAIL:
        return _detail
    if prop.edm_type is EdmType.APPROVAL:
        return _approval
    index = COLUMN[prop.attribute]
    if prop.edm_type is EdmType.DATE_TIME_OFFSET:
        return lambda row: _date_time(row[index])
    if prop.edm_type is EdmType.BOOLEAN:  # a boolean on PostgreSQL, 0 or 1 on SQLite
        return lambda row: None if row[index] is None else bool(row[index])
    return operator.itemgetter(index)  # strings, numbers and the status are stored as written


def _date_time(micros: int | None) -> datetime | str | None:
    """A stored time for orjson with `JSON_OPTIONS`: a naive datetime (UTC), which is cheaper
    to make than an aware one and which orjson writes ten times faster. orjson leaves out a
    zero fraction of a second, which `format_datetime` writes as .000000: such a time is
    written here."""
    if micros is None:
        return None
    value = _EPOCH + _MICROSECOND * micros  # cheaper than making a timedelta of micros
    return value if micros % 1_000_000 else format_datetime(value.replace(tzinfo=UTC))


def _error(
    row: Row,
    status: int = COLUMN["status"],
    code: int = COLUMN["error_code"],
    message: int = COLUMN["error_message"],
) -> dict[str, str] | None:
    return _error_value(row[status], row[code], row[message])


def _error_value(status: str, code: str | None, message: str | None) -> dict[str, str] | None:
    fields = public_error_fields(status, code, message)
    return None if fields is None else {"code": fields[0], "message": fields[1]}


def _detail(
    row: Row,
    part: int = COLUMN["progress_part"],
    records: int = COLUMN["records_written"],
    nbytes: int = COLUMN["bytes_written"],
) -> dict[str, str | int] | None:
    """As store/operations.py `progress_detail`, without making a `ProgressDetail`."""
    if row[part] is None:
        return None
    return {"part": row[part], "records": row[records], "bytes": row[nbytes]}


def _approval(
    row: Row,
    pending: int = COLUMN["approval_pending"],
    requested_by: int = COLUMN["requested_by"],
    approved_by: int = COLUMN["approved_by"],
    approved_at: int = COLUMN["approved_at"],
) -> dict[str, object] | None:
    return _approval_value(row[pending], row[requested_by], row[approved_by], row[approved_at])


def _approval_value(
    pending: int, requested_by: str | None, approved_by: str | None, approved_at: int | None
) -> dict[str, object] | None:
    """As store/operations.py `approval`, then `Approval.as_json`, for orjson with
    `JSON_OPTIONS` (the time as `_date_time` gives it)."""
    if pending:
        return {
            "status": ApprovalStatus.PENDING.value,
            "requestedBy": principal_or_none(requested_by),
            "approvedBy": None,
            "approvedDateTime": None,
        }
    if approved_by is None:
        return None
    return {
        "status": ApprovalStatus.APPROVED.value,
        "requestedBy": principal_or_none(requested_by),
        "approvedBy": principal_json(approved_by),
        "approvedDateTime": _date_time(approved_at),
    }


def _json_value(value: Any) -> Any:
    if isinstance(value, OperationError):
        return {"code": value.code, "message": value.message}
    if isinstance(value, ProgressDetail | Approval):
        return value.as_json()
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, OperationStatus):
        return value.value
    return value
