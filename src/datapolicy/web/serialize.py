"""Operation -> Graph JSON, honouring `$select`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from datapolicy.model import (
    ENTITY_SET,
    ENTITY_TYPE,
    PROPERTIES,
    Operation,
    OperationError,
    OperationStatus,
    Property,
    format_datetime,
)

ODATA_TYPE = f"#{ENTITY_TYPE}"
ALL_PROPERTIES: tuple[Property, ...] = tuple(PROPERTIES.values())


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


def _json_value(value: Any) -> Any:
    if isinstance(value, OperationError):
        return {"code": value.code, "message": value.message}
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, OperationStatus):
        return value.value
    return value
