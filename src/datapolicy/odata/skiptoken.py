"""`$skiptoken`: a keyset cursor, so that paging stays correct while rows come and go.

An offset would skip or repeat rows whenever an operation is inserted or deleted between two
pages. Instead the token records the sort-key values of the last row served (the ordered
properties plus `id`, which makes the key unique); the next page starts strictly after that key.
The token is opaque to clients (URL-safe base64 of JSON) but not secret: it holds nothing the
client could not read from the page itself. It also carries a fingerprint of `$orderby`, so a
token replayed with a different sort order is refused instead of silently misapplied, and the
page size of an `odata.maxpagesize` preference, so a next link keeps the size the first page
was asked with even when the client does not send the preference again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import orjson

from datapolicy.errors import QueryOptionError
from datapolicy.model import (
    PROPERTIES,
    EdmType,
    Operation,
    OperationStatus,
    Property,
    format_datetime,
)
from datapolicy.odata.entity import OPERATIONS, Entity

if TYPE_CHECKING:
    from datapolicy.odata.options import OrderBy

_FORMAT = 1
MAX_TOKEN_LENGTH = 4096
MAX_TOKEN_PAGE_SIZE = 2**31 - 1  # a carried page size is bounded again by the server's maximum

KeyValue = str | bool | float | datetime | OperationStatus | None


@dataclass(frozen=True, slots=True)
class OrderKey:
    """One property of the effective sort order."""

    name: str
    descending: bool


def effective_order(
    orderby: tuple[OrderBy, ...], default: str = OPERATIONS.default_order
) -> tuple[OrderKey, ...]:
    """The client's `$orderby` (or the entity's `default`, for operations submission order),
    then `id` as tie-break.

    The tie-break runs in the direction of the last ordered property, so that the whole order
    is one index (property, id) read forwards or backwards, and a keyset page can seek to its
    start with a single row-value comparison."""
    keys = [OrderKey(item.prop.name, item.descending) for item in orderby] or [
        OrderKey(default, False)
    ]
    for index, key in enumerate(keys):
        if key.name == "id":
            return tuple(keys[: index + 1])  # id is unique: nothing after it changes the order
    return (*keys, OrderKey("id", keys[-1].descending))


@dataclass(frozen=True, slots=True)
class SkipToken:
    """The position after which the next page starts: one value per key of `effective_order`."""

    values: tuple[KeyValue, ...]
    fingerprint: str
    maxpagesize: int | None = None  # the preferred page size the pages are cut by, if any

    @staticmethod
    def for_row(
        operation: Operation, orderby: tuple[OrderBy, ...], maxpagesize: int | None = None
    ) -> SkipToken:
        keys = effective_order(orderby)
        values = tuple(getattr(operation, PROPERTIES[key.name].attribute) for key in keys)
        return SkipToken(values, _fingerprint(keys), maxpagesize)

    @staticmethod
    def for_values(
        values: tuple[KeyValue, ...], keys: tuple[OrderKey, ...], maxpagesize: int | None = None
    ) -> SkipToken:
        """The token after a row whose values of `keys` are `values`, carrying the preferred
        page size the pages are cut by, if any."""
        return SkipToken(values, _fingerprint(keys), maxpagesize)

    def encode(self) -> str:
        payload: list[object] = [_FORMAT, self.fingerprint, [_dump(v) for v in self.values]]
        if self.maxpagesize is not None:
            payload.append(self.maxpagesize)
        return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")

    @staticmethod
    def decode(token: str, orderby: tuple[OrderBy, ...], entity: Entity = OPERATIONS) -> SkipToken:
        keys = effective_order(orderby, entity.default_order)
        if len(token) > MAX_TOKEN_LENGTH:
            raise _invalid()
        try:
            payload = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except (binascii.Error, ValueError):
            raise _invalid() from None
        if (
            not isinstance(payload, list)
            or len(payload) not in (3, 4)
            or payload[0] != _FORMAT
            or not isinstance(payload[2], list)
            or len(payload[2]) != len(keys)
        ):
            raise _invalid()
        maxpagesize = payload[3] if len(payload) == 4 else None
        if len(payload) == 4 and (
            type(maxpagesize) is not int or not 0 < maxpagesize <= MAX_TOKEN_PAGE_SIZE
        ):
            raise _invalid()
        if payload[1] != _fingerprint(keys):
            raise QueryOptionError(
                "The $skiptoken was issued for a different $orderby; "
                "follow @odata.nextLink as given."
            )
        values = tuple(
            _load(entity.properties[key.name], raw)
            for key, raw in zip(keys, payload[2], strict=True)
        )
        return SkipToken(values, payload[1], maxpagesize)


def _fingerprint(keys: tuple[OrderKey, ...]) -> str:
    text = ",".join(f"{k.name} {'desc' if k.descending else 'asc'}" for k in keys)
    return hashlib.blake2s(text.encode(), digest_size=6).hexdigest()


def _dump(value: KeyValue) -> object:
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, OperationStatus):
        return value.value
    return value


def _load(prop: Property, raw: object) -> KeyValue:
    if raw is None:
        if prop.nullable:
            return None
        raise _invalid()
    try:
        match prop.edm_type:
            case EdmType.STRING if isinstance(raw, str) and "\x00" not in raw:
                return raw
            case EdmType.ENUM if isinstance(raw, str):
                return OperationStatus(raw)
            case EdmType.BOOLEAN if isinstance(raw, bool):
                return raw
            case EdmType.DOUBLE if isinstance(raw, int | float) and not isinstance(raw, bool):
                return float(raw)
            case EdmType.DATE_TIME_OFFSET if isinstance(raw, str):
                # In UTC (as the store compares), 9999-12-31T23:59:59-01:00 overflows.
                return datetime.fromisoformat(raw).astimezone(UTC)
    except (ValueError, OverflowError):
        pass
    raise _invalid()


def _invalid() -> QueryOptionError:
    return QueryOptionError("The $skiptoken is not valid; follow @odata.nextLink as given.")
