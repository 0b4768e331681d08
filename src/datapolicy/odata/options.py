"""OData system query options: from the raw query string to a checked `QueryOptions`.

Option names are matched without regard to case and with or without the `$` prefix (`$top`,
`%24top`, `top`), as Graph's beta endpoint does. Each request kind declares which options it
takes (`LIST_OPTIONS`, `COUNT_OPTIONS`, `ENTITY_OPTIONS`); any other `$` option is a 400, and so
is an option given twice. Query parameters without `$` that are not option names are custom
options in OData's sense and are ignored.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from datapolicy.errors import QueryOptionError
from datapolicy.model import Property
from datapolicy.odata.entity import OPERATIONS, Entity
from datapolicy.odata.expressions import FilterNode
from datapolicy.odata.filter import parse_filter
from datapolicy.odata.search import parse_search
from datapolicy.odata.skiptoken import SkipToken

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 999  # Graph's usual ceiling for $top; the default of `[limits] max_page_size`
MAX_SKIP = 2**31 - 1
MAX_ORDERBY_ITEMS = 8
MAX_OPTION_LENGTH = 8192  # characters in any one option's value

#: The properties of an operation `$search` looks in, and that `"property:text"` may name.
SEARCHABLE: tuple[Property, ...] = OPERATIONS.searchable

LIST_OPTIONS = frozenset(
    {
        "filter",
        "search",
        "orderby",
        "select",
        "expand",
        "top",
        "skip",
        "count",
        "skiptoken",
        "format",
    }
)
COUNT_OPTIONS = frozenset({"filter", "search", "format"})
ENTITY_OPTIONS = frozenset({"select", "expand", "format"})
NO_OPTIONS: frozenset[str] = frozenset()

# Every system query option OData defines: one that a request does not take is "not allowed on
# this request" (naming those it does); any other `$x` is "not supported".
_KNOWN_OPTIONS = LIST_OPTIONS | {
    "apply",
    "compute",
    "deltatoken",
    "index",
    "levels",
    "schemaversion",
    "id",
}
_ORDER_ITEM = re.compile(r"^\s*([A-Za-z_][\w.]*)(?:\s+(asc|desc))?\s*$", re.IGNORECASE)
_INTEGER = re.compile(r"^[0-9]{1,12}$")


@dataclass(frozen=True, slots=True)
class OrderBy:
    prop: Property
    descending: bool = False


@dataclass(frozen=True, slots=True)
class QueryOptions:
    filter: FilterNode | None = None
    search: FilterNode | None = None
    orderby: tuple[OrderBy, ...] = ()
    select: tuple[Property, ...] | None = None
    top: int | None = None
    skip: int = 0
    count: bool = False
    skiptoken: SkipToken | None = None
    raw: dict[str, str] = field(default_factory=dict)  # the options as given, by canonical name
    # The page size from an `odata.maxpagesize` preference (the request's `Prefer` header, or
    # the one its `$skiptoken` carries on), once the route has applied it; never with `$top`.
    maxpagesize: int | None = None

    @property
    def page_size(self) -> int:
        """`$top` (Graph's page size), else the preferred page size, else the default."""
        if self.top is not None:
            return self.top
        return DEFAULT_PAGE_SIZE if self.maxpagesize is None else self.maxpagesize


def parse_query_options(
    params: Iterable[tuple[str, str]],
    allowed: frozenset[str],
    max_top: int = MAX_PAGE_SIZE,
    entity: Entity = OPERATIONS,
) -> QueryOptions:
    """Check the options against what the request kind allows and parse each one against the
    `entity`'s properties; a `$top` over `max_top` is a 400 naming the maximum (Graph lets
    each API either clamp or refuse; refusing tells the client why it got fewer rows than it
    asked for)."""
    raw = _collect(params, allowed)
    orderby = _parse_orderby(raw["orderby"], entity) if "orderby" in raw else ()
    if "expand" in raw:
        _check_expand(raw["expand"], entity)
    if "format" in raw and raw["format"].strip().lower() not in ("json", "application/json"):
        raise QueryOptionError(f"$format '{raw['format']}' is not supported; use 'json'.")
    return QueryOptions(
        filter=_parsed_filter(raw["filter"], entity) if "filter" in raw else None,
        search=_parsed_search(raw["search"], entity) if "search" in raw else None,
        orderby=orderby,
        select=_parse_select(raw["select"], entity) if "select" in raw else None,
        top=_parse_integer("top", raw["top"], max_top) if "top" in raw else None,
        skip=_parse_integer("skip", raw["skip"], MAX_SKIP) if "skip" in raw else 0,
        count=_parse_boolean("count", raw["count"]) if "count" in raw else False,
        skiptoken=(
            SkipToken.decode(raw["skiptoken"], orderby, entity) if "skiptoken" in raw else None
        ),
        raw=raw,
    )


# The trees of the last few hundred `$filter` and `$search` texts, which clients repeat (a page
# and its next pages, a status polled): parsing one costs more than the rest of the options.
# The trees are immutable; a text that fails to parse is not kept (its error is raised again).
PARSED_TEXTS_CACHED = 256


@functools.lru_cache(maxsize=PARSED_TEXTS_CACHED)
def _parsed_filter(text: str, entity: Entity) -> FilterNode:
    return parse_filter(text, entity.properties, entity.type_name)


@functools.lru_cache(maxsize=PARSED_TEXTS_CACHED)
def _parsed_search(text: str, entity: Entity) -> FilterNode:
    return parse_search(text, entity.searchable, entity.properties, entity.type_name)


def _collect(params: Iterable[tuple[str, str]], allowed: frozenset[str]) -> dict[str, str]:
    raw: dict[str, str] = {}
    for name, value in params:
        canonical = name.lower().removeprefix("$")
        if not name.startswith("$"):
            if canonical not in allowed:
                continue  # a custom query option: ignored, as OData prescribes
        elif canonical not in _KNOWN_OPTIONS:
            raise QueryOptionError(f"Query option '{name[:60]}' is not supported.")
        elif canonical not in allowed:
            raise QueryOptionError(
                f"Query option '${canonical}' is not allowed on this request. "
                + (
                    f"Allowed: {', '.join('$' + o for o in sorted(allowed))}."
                    if allowed
                    else "It takes no query options."
                )
            )
        if canonical in raw:
            raise QueryOptionError(f"Query option '${canonical}' is given more than once.")
        if len(value) > MAX_OPTION_LENGTH:
            raise QueryOptionError(
                f"Query option '${canonical}' is longer than {MAX_OPTION_LENGTH} characters."
            )
        if "\x00" in value:  # no stored string has one (PostgreSQL's text cannot hold it)
            raise QueryOptionError(f"Query option '${canonical}' contains the character NUL.")
        raw[canonical] = value
    return raw


def _parse_integer(name: str, value: str, maximum: int) -> int:
    if not _INTEGER.match(value):
        raise QueryOptionError(
            f"Invalid value '{value[:40]}' for query option '${name}': "
            "expected a non-negative integer."
        )
    number = int(value)
    if number > maximum:
        raise QueryOptionError(
            f"Invalid value '{value}' for query option '${name}': the maximum is {maximum}."
        )
    return number


def _parse_boolean(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise QueryOptionError(
            f"Invalid value '{value[:40]}' for query option '${name}': expected true or false."
        )
    return lowered == "true"


def _property(name: str, option: str, entity: Entity) -> Property:
    prop = entity.properties.get(name)
    if prop is None:
        raise QueryOptionError(
            f"Could not find a property named '{name}' on type '{entity.type_name}' (in ${option})."
        )
    return prop


def _parse_orderby(value: str, entity: Entity) -> tuple[OrderBy, ...]:
    items = value.split(",")
    if len(items) > MAX_ORDERBY_ITEMS:
        raise QueryOptionError(f"$orderby takes at most {MAX_ORDERBY_ITEMS} properties.")
    result: list[OrderBy] = []
    for item in items:
        match = _ORDER_ITEM.match(item)
        if match is None:
            raise QueryOptionError(
                f"Invalid $orderby item '{item.strip()[:60]}': "
                "expected a property name optionally followed by 'asc' or 'desc'."
            )
        prop = _property(match.group(1), "orderby", entity)
        if prop.edm_type.is_complex:
            raise QueryOptionError(
                f"The property '{prop.name}' is of a complex type and cannot be used in $orderby."
            )
        if any(existing.prop is prop for existing in result):
            raise QueryOptionError(f"The property '{prop.name}' appears twice in $orderby.")
        result.append(OrderBy(prop, (match.group(2) or "asc").lower() == "desc"))
    return tuple(result)


def _parse_select(value: str, entity: Entity) -> tuple[Property, ...]:
    selected: list[Property] = []
    for item in (part.strip() for part in value.split(",")):
        if item == "*":
            return tuple(entity.properties.values())
        if not item:
            raise QueryOptionError("$select contains an empty property name.")
        prop = _property(item, "select", entity)
        if prop not in selected:
            selected.append(prop)
    return tuple(selected)


def _check_expand(value: str, entity: Entity) -> None:
    """The entities served have no navigation properties: `$expand=*` (expand all of them,
    which Graph's clients send) expands nothing and is accepted; naming any property is an
    error."""
    for item in value.split(","):
        name = item.split("(")[0].split("/")[0].strip()
        if name == "*" and item.strip() == "*":
            continue
        if not name:
            raise QueryOptionError("$expand contains an empty property name.")
        if name == "*":
            raise QueryOptionError(
                f"The type '{entity.type_name}' has no navigation properties: "
                f"'{item.strip()[:60]}' expands nothing; $expand=* alone is accepted."
            )
        if name in entity.properties:
            raise QueryOptionError(
                f"Property '{name}' on type '{entity.type_name}' is not a navigation property or "
                "complex property. Only navigation properties can be expanded."
            )
        raise QueryOptionError(
            f"Could not find a property named '{name}' on type '{entity.type_name}' (in $expand)."
        )
