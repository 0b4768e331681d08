"""The typed condition tree that `$filter` and `$search` both compile to.

It is what the query layer hands the store: every property is a known `Property` and every
literal is already of the property's Python type, so translating it to SQL cannot fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from datapolicy.model import OperationStatus, Property

ComparisonOperator = Literal["eq", "ne", "gt", "ge", "lt", "le"]
StringFunction = Literal["startswith", "endswith", "contains"]
Value = str | bool | float | datetime | OperationStatus | None


@dataclass(frozen=True, slots=True)
class Comparison:
    """`property op literal`; `value` is None only for `eq null` / `ne null`."""

    prop: Property
    op: ComparisonOperator
    value: Value


@dataclass(frozen=True, slots=True)
class PropertyComparison:
    """`property op property`, both of the same type."""

    left: Property
    op: ComparisonOperator
    right: Property


@dataclass(frozen=True, slots=True)
class Membership:
    """`property in (literal, ...)`."""

    prop: Property
    values: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class StringMatch:
    """`startswith|endswith|contains(property, 'text')`, case-sensitive as OData defines them."""

    function: StringFunction
    prop: Property
    value: str


@dataclass(frozen=True, slots=True)
class Junction:
    op: Literal["and", "or"]
    left: FilterNode
    right: FilterNode


@dataclass(frozen=True, slots=True)
class Negation:
    operand: FilterNode


@dataclass(frozen=True, slots=True)
class Constant:
    value: bool


@dataclass(frozen=True, slots=True)
class TextSearch:
    """A `$search` term: case-insensitive substring match of `text` in any of `props`."""

    props: tuple[Property, ...]
    text: str


FilterNode = (
    Comparison
    | PropertyComparison
    | Membership
    | StringMatch
    | TextSearch
    | Junction
    | Negation
    | Constant
)
