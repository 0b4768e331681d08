"""Operation -> Graph JSON, honouring `$select`.

An entity is written from an `Operation` (`entity`) or, for a list page and the read fast path
(web/hot_path/fastpath.py), straight from the rows the store read (`entity_rows`, `entity_row`):
a page of 100 made into operations and then into dictionaries cost more CPU than everything else
in a list request. Both give the same JSON, property by property; the rows' date-times are left
to orjson, which writes them much faster than Python, given `JSON_OPTIONS`.
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
    EdmType,
    Operation,
    OperationError,
    OperationStatus,
    ProgressDetail,
    Property,
    etag_of,
    format_datetime,
)
from datapolicy.store.operations import ROW, public_error_fields

ODATA_TYPE = f"#{ENTITY_TYPE}"
ALL_PROPERTIES: tuple[Property, ...] = tuple(PROPERTIES.values())
# What orjson needs to write `entity_rows`' date-times (naive, UTC) as `format_datetime` does.
JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC

_EPOCH = datetime(1970, 1, 1)  # naive: UTC
_COLUMN = {column.name: index for index, column in enumerate(ROW)}

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


def entity_rows(rows: Sequence[Row], select: tuple[Property, ...] | None) -> list[dict[str, Any]]:
    """`entity` of each row the store read (`store.operations.ROW`'s columns), for orjson with
    `JSON_OPTIONS`."""
    if select is None or select == ALL_PROPERTIES:
        return [entity_row(row) for row in rows]
    readers = _readers(select)
    version = _COLUMN["version"]
    bodies = []
    for row in rows:
        body: dict[str, Any] = {"@odata.type": ODATA_TYPE, "@odata.etag": etag_of(row[version])}
        for name, read in readers:
            body[name] = read(row)
        bodies.append(body)
    return bodies


def entity_row(row: Row) -> dict[str, Any]:
    """`entity(operation, None)` of the operation in `row`, for orjson with `JSON_OPTIONS`:
    every property, in `PROPERTIES`' order. Written out, as one dictionary display: a list page
    without `$select` (the usual one) makes a hundred of them, and this costs half of what the
    readers' loop does."""
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
    index = _COLUMN[prop.attribute]
    if prop.edm_type is EdmType.DATE_TIME_OFFSET:
        return lambda row: _date_time(row[index])
    return operator.itemgetter(index)  # strings, numbers and the status are stored as written


def _date_time(micros: int | None) -> datetime | str | None:
    """A stored time for orjson with `JSON_OPTIONS`: a naive datetime (UTC), which is cheaper
    to make than an aware one and which orjson writes ten times faster. orjson leaves out a
    zero fraction of a second, which `format_datetime` writes as .000000: such a time is
    written here."""
    if micros is None:
        return None
    value = _EPOCH + timedelta(0, 0, micros)
    return value if micros % 1_000_000 else format_datetime(value.replace(tzinfo=UTC))


def _error(
    row: Row,
    status: int = _COLUMN["status"],
    code: int = _COLUMN["error_code"],
    message: int = _COLUMN["error_message"],
) -> dict[str, str] | None:
    return _error_value(row[status], row[code], row[message])


def _error_value(status: str, code: str | None, message: str | None) -> dict[str, str] | None:
    fields = public_error_fields(status, code, message)
    return None if fields is None else {"code": fields[0], "message": fields[1]}


def _detail(
    row: Row,
    part: int = _COLUMN["progress_part"],
    records: int = _COLUMN["records_written"],
    nbytes: int = _COLUMN["bytes_written"],
) -> dict[str, str | int] | None:
    """As store/operations.py `progress_detail`, without making a `ProgressDetail`."""
    if row[part] is None:
        return None
    return {"part": row[part], "records": row[records], "bytes": row[nbytes]}


def _json_value(value: Any) -> Any:
    if isinstance(value, OperationError):
        return {"code": value.code, "message": value.message}
    if isinstance(value, ProgressDetail):
        return value.as_json()
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, OperationStatus):
        return value.value
    return value
