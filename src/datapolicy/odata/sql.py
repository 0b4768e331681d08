"""Translate checked query options into SQLAlchemy Core clauses.

Every condition is built to be two-valued: OData says `null ne 'x'` is true and
`not (null eq 'x')` is true, while SQL would yield NULL and drop the row. So comparisons against
nullable columns state their NULL case explicitly. LIKE patterns are always escaped
(`autoescape`), so `%` and `_` in a client's text match themselves.

The clauses mean the same on SQLite and PostgreSQL: LIKE is case-sensitive on both (the SQLite
connection sets `case_sensitive_like`), `$search` folds case alike (ASCII only, see
`ascii_lower`), NULL's place in an order is stated (`NULLS FIRST`/`LAST`) rather than left to
each database's default, and strings compare by bytes (the store's columns are in the "C"
collation on PostgreSQL).

Conditions are built from parameterized trees (`parameterize`): every literal becomes a named
bound parameter, so the SQL depends only on a query's shape, not on its values, and the store
compiles each shape once (SQLAlchemy's compiler costs more than the rest of a list request). The
values are converted to what the SQL compares (the stored form, escaped and folded LIKE text)
while parameterizing.

`status` is ordered, and compared with `gt`/`ge`/`lt`/`le`, by its member's value in the enum
(`sort_key`: a CASE over the stored name), as ASP.NET OData compares enum members; `eq`, `ne` and
`in` compare the stored name itself, which the status index serves. A `$skiptoken`'s position
is compared by the same key as the ORDER BY, so keyset pages follow the order they are cut from.

The store supplies `columns` (OData name -> column) and `encode` (a Python value -> the column's
stored form), so this module knows nothing about how the store lays out its tables.
"""

from __future__ import annotations

import itertools
import operator
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    and_,
    bindparam,
    case,
    false,
    func,
    not_,
    or_,
    true,
    tuple_,
)

from datapolicy.model import PROPERTIES, STATUS_VALUES, EdmType, Property
from datapolicy.odata.expressions import (
    Comparison,
    Constant,
    FilterNode,
    Junction,
    Membership,
    Negation,
    PropertyComparison,
    StringMatch,
    TextSearch,
    Value,
)
from datapolicy.odata.skiptoken import OrderKey

Columns = Mapping[str, ColumnElement[Any]]
Encode = Callable[[Property, Value], Any]

LIKE_ESCAPE = "/"

_OPERATORS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
_STATUS_VALUES = {status.value: value for status, value in STATUS_VALUES.items()}


@dataclass(frozen=True, slots=True)
class Parameter:
    """A literal's place in a parameterized tree: bound by `name` when the SQL runs."""

    name: str


@dataclass(frozen=True, slots=True, eq=False)
class Parameterized:
    """A filter or search tree whose literals are `Parameter`s, compared and hashed by `shape`:
    the tree flattened in prefix order (`and`/`or`/`not` for inner nodes, the leaves as they
    are), which determines the tree, and which hashing cannot recurse through (a chain of
    hundreds of `or`s is as deep as it is long)."""

    tree: FilterNode
    shape: tuple[object, ...]

    def __hash__(self) -> int:
        return hash(self.shape)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Parameterized) and self.shape == other.shape


def parameterize(
    node: FilterNode, encode: Encode, prefix: str, params: dict[str, Any]
) -> Parameterized:
    """`node` with every literal replaced by a `Parameter` named `prefix` and a number (in
    prefix order), whose value, as the SQL compares it, is added to `params`. A null literal
    stays in the tree: it changes the SQL (`IS NULL`), not a value."""
    numbers = itertools.count()
    shape: list[object] = []

    def bind(value: Any) -> Parameter:
        parameter = Parameter(f"{prefix}{next(numbers)}")
        params[parameter.name] = value
        return parameter

    def walk(node: FilterNode) -> FilterNode:
        # The leaves' literals become Parameters, a placeholder their fields' types do not name:
        # hence the ignores below.
        match node:
            case Junction(op=op, left=left, right=right):
                shape.append(op)
                return Junction(op, walk(left), walk(right))
            case Negation(operand=operand):
                shape.append("not")
                return Negation(walk(operand))
            case Comparison(prop=prop, op=op, value=value) if value is not None:
                node = Comparison(prop, op, bind(encode(prop, value)))  # type: ignore[arg-type]
            case Membership(prop=prop, values=values):
                node = Membership(
                    prop,
                    tuple(None if v is None else bind(encode(prop, v)) for v in values),  # type: ignore[misc]
                )
            case StringMatch(function=function, prop=prop, value=value):
                node = StringMatch(function, prop, bind(_like_text(value)))  # type: ignore[arg-type]
            case TextSearch(props=props, text=text):
                node = TextSearch(props, bind(_like_text(ascii_lower(text))))  # type: ignore[arg-type]
        # A leaf: Constant, PropertyComparison and a comparison with null have no literal.
        shape.append(node)
        return node

    return Parameterized(walk(node), tuple(shape))


def where_clause(node: FilterNode, columns: Columns) -> ColumnElement[bool]:
    """The SQL condition for a parameterized filter or search tree (`parameterize`)."""
    match node:
        case Junction(op="and", left=left, right=right):
            return and_(where_clause(left, columns), where_clause(right, columns))
        case Junction(left=left, right=right):
            return or_(where_clause(left, columns), where_clause(right, columns))
        case Negation(operand=Negation(operand=inner)):
            # not not x is x (every condition built here is two-valued). Collapsing it keeps a
            # chain of nots from becoming as many nested NOT (...), which SQLite's parser refuses
            # ("parser stack overflow") from about 40 deep.
            return where_clause(inner, columns)
        case Negation(operand=operand):
            return not_(where_clause(operand, columns))
        case Constant(value=value):
            return true() if value else false()
        case Comparison(prop=prop, op=op, value=None):
            column = columns[prop.name]
            return column.is_(None) if op == "eq" else column.is_not(None)
        case Comparison(prop=prop, op=op, value=value):
            column = columns[prop.name]
            if op in ("eq", "ne"):
                condition = _OPERATORS[op](column, _bound(value, column))
            else:
                bound = _bound(value, column)
                condition = _OPERATORS[op](sort_key(prop, column), sort_key(prop, bound))
            if not prop.nullable:
                return condition
            return (
                or_(column.is_(None), condition)
                if op == "ne"
                else _not_null(prop, column, condition)
            )
        case PropertyComparison(left=left, op=op, right=right):
            return _compare_columns(left, op, right, columns)
        case Membership(prop=prop, values=values):
            column = columns[prop.name]
            present = [_bound(v, column) for v in values if v is not None]
            condition = _not_null(prop, column, column.in_(present)) if present else false()
            return or_(column.is_(None), condition) if None in values else condition
        case StringMatch(function=function, prop=prop, value=value):
            column = columns[prop.name]
            method = getattr(column, function)
            return _not_null(prop, column, method(_bound(value, column), escape=LIKE_ESCAPE))
        case TextSearch(props=props, text=text):
            return or_(
                *(
                    _not_null(
                        p,
                        columns[p.name],
                        func.lower(columns[p.name]).contains(
                            _bound(text, columns[p.name]), escape=LIKE_ESCAPE
                        ),
                    )
                    for p in props
                )
            )
    raise TypeError(f"not a filter node: {node!r}")  # pragma: no cover - exhaustive above


def _bound(parameter: object, column: ColumnElement[Any]) -> BindParameter[Any]:
    assert isinstance(parameter, Parameter), f"not parameterized: {parameter!r}"
    return bindparam(parameter.name, type_=column.type)


def _like_text(text: str) -> str:
    """`text` matching itself inside a LIKE pattern: what SQLAlchemy's `autoescape` does."""
    return (
        text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def ascii_lower(text: str) -> str:
    """`text` with A-Z folded to a-z, as SQL's lower() does with SQLite's built-in function and
    with PostgreSQL's in the "C" collation of the store's columns (neither folds other
    letters). The search text is folded here, not by lower() in SQL, where PostgreSQL would
    fold it by the database's default collation."""
    return text.translate(_ASCII_LOWER)


def _not_null(
    prop: Property, column: ColumnElement[Any], condition: ColumnElement[bool]
) -> ColumnElement[bool]:
    return and_(column.is_not(None), condition) if prop.nullable else condition


def _compare_columns(
    left: Property, op: str, right: Property, columns: Columns
) -> ColumnElement[bool]:
    lcol, rcol = columns[left.name], columns[right.name]
    if not (left.nullable or right.nullable):
        return _OPERATORS[op](lcol, rcol)
    if op == "eq":
        return lcol.is_not_distinct_from(rcol)
    if op == "ne":
        return lcol.is_distinct_from(rcol)
    return and_(lcol.is_not(None), rcol.is_not(None), _OPERATORS[op](lcol, rcol))


def sort_key(prop: Property, value: ColumnElement[Any]) -> ColumnElement[Any]:
    """What `value` (a column or a bound value of `prop`) is ordered by: itself, or for the
    enum its member's value (`STATUS_VALUES`). An unknown name has none (NULL): no row holds
    one, since the store writes members only."""
    if prop.edm_type is not EdmType.ENUM:
        return value
    return case(_STATUS_VALUES, value=value)


def order_clauses(
    keys: tuple[OrderKey, ...],
    columns: Columns,
    properties: Mapping[str, Property] = PROPERTIES,
) -> list[ColumnElement[Any]]:
    """ORDER BY terms. OData sorts null before any value in ascending order, after in descending.
    `properties`: the entity's."""
    terms: list[ColumnElement[Any]] = []
    for key in keys:
        term = sort_key(properties[key.name], columns[key.name])
        terms.append(term.desc().nulls_last() if key.descending else term.asc().nulls_first())
    return terms


def after_clause(
    keys: tuple[OrderKey, ...],
    values: tuple[Parameter | None, ...],
    columns: Columns,
    properties: Mapping[str, Property] = PROPERTIES,
) -> ColumnElement[bool]:
    """Rows strictly after the key `values` in the order `keys` (a keyset page boundary); each
    value is a `Parameter`, or None for a null key value. `properties`: the entity's."""
    props = [properties[k.name] for k in keys]
    bound = [
        None if v is None else sort_key(p, _bound(v, columns[p.name]))
        for p, v in zip(props, values, strict=True)
    ]
    keyed = {p.name: sort_key(p, columns[p.name]) for p in props}
    same_direction = len({k.descending for k in keys}) == 1
    if same_direction and None not in values and not any(p.nullable for p in props):
        # A row-value comparison lets SQLite and PostgreSQL seek straight to the position.
        row = tuple_(*(keyed[k.name] for k in keys))
        bound_row = tuple_(*bound)
        return row < bound_row if keys[0].descending else row > bound_row
    return _expanded_after(keys, props, bound, keyed)


def _expanded_after(
    keys: tuple[OrderKey, ...],
    props: list[Property],
    bound: list[ColumnElement[Any] | None],
    columns: Columns,
) -> ColumnElement[bool]:
    """(k1 after v1) or (k1 = v1 and ((k2 after v2) or (k2 = v2 and ...))).

    When the first key is not null, the same condition is also bounded by `k1 >= v1` (or `<=`
    descending): redundant, but it lets the database seek instead of filtering from the top."""
    condition: ColumnElement[bool] | None = None
    for key, prop, value in reversed(list(zip(keys, props, bound, strict=True))):
        column = columns[key.name]
        equal = column.is_(None) if value is None else column == value
        after: ColumnElement[bool]
        if value is None:
            after = false() if key.descending else column.is_not(None)
        elif key.descending:
            after = or_(column < value, column.is_(None)) if prop.nullable else column < value
        else:
            after = column > value
        condition = after if condition is None else or_(after, and_(equal, condition))
    assert condition is not None
    first, value = columns[keys[0].name], bound[0]
    if value is not None and not props[0].nullable:
        condition = and_(first <= value if keys[0].descending else first >= value, condition)
    return condition
