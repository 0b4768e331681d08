"""`$filter`: parse with odata-query, then check every node against the entity's properties.

odata-query's grammar is sound, but its stock SQL visitors trust the input (any attribute name,
any literal type, unescaped LIKE patterns). So we only take its syntax tree and translate it into
a small typed tree of our own, rejecting anything we do not support with a message that names the
problem. The store turns that tree into SQL (`datapolicy.odata.sql`); nothing here knows SQL.

Three forms Graph (ASP.NET OData) accepts are brought to the grammar's terms on the token stream
(`_graph_forms`) before odata-query parses it: function names in any case (`startsWith`); the
namespace-qualified enum literal (`microsoft.graph.dataPolicyOperationStatus'complete'`), which
becomes an `EnumLiteral` the checker matches against the property's enum type; and the
one-value list `in ('x')`, which odata-query only reads written as `('x',)`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from dateutil.parser import isoparse
from odata_query import ast
from odata_query.exceptions import ODataException, ParsingException, TokenizingException
from odata_query.grammar import ODATA_FUNCTIONS, ODataLexer, ODataParser
from sly.lex import Token

from datapolicy.errors import QueryOptionError
from datapolicy.model import ENTITY_TYPE, EdmType, OperationStatus, Property
from datapolicy.odata.expressions import (
    Comparison,
    ComparisonOperator,
    Constant,
    FilterNode,
    Junction,
    Membership,
    Negation,
    PropertyComparison,
    StringFunction,
    StringMatch,
    Value,
)

MAX_FILTER_LENGTH = 4096  # characters; a filter longer than this is refused, not parsed
MAX_IN_LIST = 500  # values in one `in (...)` list
# Nesting of and/or/not. SQLite's parser refuses the SQL of alternately nested and/or from about
# 34 levels ("parser stack overflow", a 500), so the limit stays safely below that.
MAX_DEPTH = 30

_COMPARATORS: dict[type[ast._Comparator], ComparisonOperator] = {
    ast.Eq: "eq",
    ast.NotEq: "ne",
    ast.Gt: "gt",
    ast.GtE: "ge",
    ast.Lt: "lt",
    ast.LtE: "le",
}
_MIRRORED: dict[ComparisonOperator, ComparisonOperator] = {
    "eq": "eq",
    "ne": "ne",
    "gt": "lt",
    "ge": "le",
    "lt": "gt",
    "le": "ge",
}
_STRING_FUNCTIONS: tuple[StringFunction, ...] = ("startswith", "endswith", "contains")


@dataclass(frozen=True)
class EnumLiteral(ast.String):
    """`Namespace.EnumType'member'`: a string literal that names its enum type."""

    type_name: str = ""


def _graph_forms(tokens: Iterator[Token]) -> Iterator[Token]:
    """The lexer's tokens, with a function name in any case lower-cased (the name that
    odata-query knows), and a qualified type name directly followed by a string (no space
    between) merged into one STRING token holding an `EnumLiteral`."""
    previous: Token | None = None
    for token in tokens:
        if previous is not None:
            if token.type == "(" and previous.type == "ODATA_IDENTIFIER":
                name: ast.Identifier = previous.value
                if not name.namespace and name.name.lower() in ODATA_FUNCTIONS:
                    previous.value = ast.Identifier(name.name.lower())
            elif (
                token.type == "STRING"
                and previous.type == "ODATA_IDENTIFIER"
                and previous.value.namespace
                and previous.index + len(previous.value.full_name()) == token.index
            ):
                token.value = EnumLiteral(token.value.val, previous.value.full_name())
                token.index = previous.index
                previous = token
                continue
            yield previous
        previous = token
    if previous is not None:
        yield previous


_LITERALS = frozenset(
    {"STRING", "INTEGER", "DECIMAL", "GUID", "DATE", "DATETIME", "TIME", "BOOLEAN", "NULL"}
)
#: `in ( value )`, one token each, spaces (WS) aside: the pattern `_single_item_lists` completes.
_SINGLE_ITEM_LIST = ("IN", "(", _LITERALS, ")")


def _single_item_lists(tokens: Iterator[Token]) -> Iterator[Token]:
    """The tokens, with a comma added to a one-value `in` list: `in ('x')` -> `in ('x',)`."""
    held: list[Token] = []  # tokens matching the start of the pattern, spaces included
    for token in tokens:
        if held and token.type == "WS":
            held.append(token)
            continue
        matched = sum(1 for t in held if t.type != "WS")
        expected = _SINGLE_ITEM_LIST[matched]
        if token.type == expected or (isinstance(expected, frozenset) and token.type in expected):
            if expected == ")":
                comma = Token()
                comma.type = comma.value = ","
                comma.lineno, comma.index = token.lineno, token.index
                held.append(comma)
            held.append(token)
            if matched + 1 < len(_SINGLE_ITEM_LIST):
                continue
        else:
            held.append(token)
        yield from held
        held.clear()
    yield from held


def parse_filter(
    text: str, properties: Mapping[str, Property], entity_type: str = ENTITY_TYPE
) -> FilterNode:
    """Parse and type-check a `$filter` expression on the properties of `entity_type`."""
    text = text.strip()
    if not text:
        raise QueryOptionError("The query specified in the URI is not valid: $filter is empty.")
    if len(text) > MAX_FILTER_LENGTH:
        raise QueryOptionError(
            f"The $filter expression is {len(text)} characters long; "
            f"the limit is {MAX_FILTER_LENGTH}."
        )
    try:
        # A parser per call: sly parsers keep state and are not safe to share between threads.
        tree = ODataParser().parse(_single_item_lists(_graph_forms(ODataLexer().tokenize(text))))
    except TokenizingException as exc:
        raise QueryOptionError(
            f"Syntax error in $filter at position {exc.token.index}: "
            f"unexpected character {str(exc.token.value)[:1]!r}."
        ) from None
    except ParsingException as exc:
        raise QueryOptionError(_describe_parse_error(text, exc)) from None
    except RecursionError:
        raise _too_complex() from None
    except ODataException as exc:
        raise QueryOptionError(f"Invalid $filter expression: {str(exc).rstrip('.')}.") from None
    if tree is None:
        raise QueryOptionError("The query specified in the URI is not valid: $filter is empty.")
    try:
        return _Checker(properties, entity_type).boolean(tree)
    except RecursionError:
        raise _too_complex() from None


def _unsupported_function(name: str) -> QueryOptionError:
    return QueryOptionError(
        f"The function '{name}' is not supported in $filter; supported functions: "
        + ", ".join(_STRING_FUNCTIONS)
        + "."
    )


def _too_complex() -> QueryOptionError:
    return QueryOptionError("The $filter expression is nested too deeply to evaluate.")


def _describe_parse_error(text: str, exc: ParsingException) -> str:
    if exc.token is None or exc.eof:
        return "Syntax error in $filter: the expression ends unexpectedly."
    near = text[exc.token.index : exc.token.index + 20].strip() or text[exc.token.index :]
    return f"Syntax error in $filter at position {exc.token.index}, near {near!r}."


class _Checker:
    """Walks odata-query's tree and builds the typed one, or explains why it cannot."""

    def __init__(self, properties: Mapping[str, Property], entity_type: str):
        self.properties = properties
        self.entity_type = entity_type

    def boolean(self, node: ast._Node, depth: int = 0) -> FilterNode:
        if depth > MAX_DEPTH:
            raise _too_complex()
        match node:
            case ast.BoolOp(op=op, left=left, right=right):
                kind: Literal["and", "or"] = "and" if isinstance(op, ast.And) else "or"
                # A chain of the same operator (a or b or c ...) is long, not deep.
                return Junction(
                    kind,
                    self.boolean(left, depth + _nesting(op, left)),
                    self.boolean(right, depth + _nesting(op, right)),
                )
            case ast.UnaryOp(op=ast.Not(), operand=operand):
                return Negation(self.boolean(operand, depth + 1))
            case ast.Compare(comparator=ast.In(), left=left, right=right):
                return self.membership(left, right)
            case ast.Compare(comparator=comparator, left=left, right=right):
                return self.comparison(_COMPARATORS[type(comparator)], left, right)
            case ast.Call():
                return self.string_match(node)
            case ast.Boolean(val=val):
                return Constant(val.lower() == "true")
            case ast.Identifier() | ast.Attribute():
                prop = self.property(node)
                if prop.edm_type is EdmType.BOOLEAN:
                    # Not read as `eq true`: `not dryRun` would then keep the nulls (exports),
                    # which OData's three-valued logic drops. Written out, each is plain.
                    raise QueryOptionError(
                        f"The Boolean property '{prop.name}' is compared with a value, not "
                        f"used as a condition on its own: {prop.name} eq true, or "
                        f"{prop.name} eq false."
                    )
                raise QueryOptionError(
                    f"The property '{prop.name}' is not a Boolean and cannot be used as a "
                    "condition on its own; compare it with a value."
                )
            case _:
                raise QueryOptionError(f"$filter needs a condition, found {_describe(node)}.")

    def property(self, node: ast._Node) -> Property:
        if isinstance(node, ast.Attribute):
            raise QueryOptionError(
                f"Property paths are not supported: '{_path(node)}'. $filter compares the "
                f"primitive properties of '{self.entity_type}' only, not the fields of a "
                "complex property."
            )
        if isinstance(node, ast.Call):
            name = node.func.full_name()
            if name in _STRING_FUNCTIONS:
                raise QueryOptionError(
                    f"The function '{name}' returns a Boolean; use it as a condition on its own."
                )
            raise _unsupported_function(name)
        if not isinstance(node, ast.Identifier):
            raise QueryOptionError(f"Expected a property name, found {_describe(node)}.")
        prop = self.properties.get(node.full_name())
        if prop is None:
            raise QueryOptionError(
                f"Could not find a property named '{node.full_name()}' on type "
                f"'{self.entity_type}'."
            )
        if prop.edm_type.is_complex:
            raise QueryOptionError(
                f"The property '{prop.name}' is of the complex type {prop.edm_type} and cannot "
                "be used in $filter."
            )
        return prop

    def comparison(self, op: ComparisonOperator, left: ast._Node, right: ast._Node) -> FilterNode:
        if _is_property(left) and _is_property(right):
            lprop, rprop = self.property(left), self.property(right)
            if lprop.edm_type is not rprop.edm_type:
                raise QueryOptionError(
                    f"Cannot compare '{lprop.name}' ({lprop.edm_type}) with "
                    f"'{rprop.name}' ({rprop.edm_type})."
                )
            return PropertyComparison(lprop, op, rprop)
        if _is_property(right):
            left, right, op = right, left, _MIRRORED[op]
        prop = self.property(left)
        value = self.literal(prop, right)
        if value is None and op not in ("eq", "ne"):
            raise QueryOptionError(f"null can only be compared with 'eq' or 'ne', not '{op}'.")
        return Comparison(prop, op, value)

    def membership(self, left: ast._Node, right: ast._Node) -> FilterNode:
        prop = self.property(left)
        items = right.val if isinstance(right, ast.List) else [right]
        if len(items) > MAX_IN_LIST:
            raise QueryOptionError(
                f"The 'in' list has {len(items)} values; the limit is {MAX_IN_LIST}."
            )
        values = tuple(self.literal(prop, item) for item in items)
        if not values:
            raise QueryOptionError("The 'in' operator needs at least one value.")
        return Membership(prop, values)

    def string_match(self, node: ast.Call) -> FilterNode:
        name = node.func.full_name()
        if name not in _STRING_FUNCTIONS:
            raise _unsupported_function(name)
        if len(node.args) != 2:
            raise QueryOptionError(f"The function '{name}' takes two arguments.")
        prop = self.property(node.args[0])
        if prop.edm_type not in (EdmType.STRING, EdmType.ENUM):
            raise QueryOptionError(
                f"The function '{name}' needs a string property; '{prop.name}' is {prop.edm_type}."
            )
        arg = node.args[1]
        if not isinstance(arg, ast.String) or isinstance(arg, EnumLiteral):
            raise QueryOptionError(
                f"The second argument of '{name}' must be a string literal, found {_describe(arg)}."
            )
        return StringMatch(name, prop, arg.val)

    def literal(self, prop: Property, node: ast._Node) -> Value:
        """Convert a literal to the property's type, or explain the mismatch."""
        if isinstance(node, ast.Null):
            return None
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            value = self.literal(prop, node.operand)
            if isinstance(value, float):
                return -value
            raise QueryOptionError(f"Cannot negate {_describe(node.operand)}.")
        match prop.edm_type, node:
            case _, EnumLiteral(type_name=type_name) if type_name != prop.edm_type:
                raise QueryOptionError(
                    f"A value of type {prop.edm_type} is needed for '{prop.name}', found a "
                    f"value of the type '{type_name}'."
                )
            case EdmType.STRING, ast.String(val=val) | ast.GUID(val=val):
                return val
            case EdmType.BOOLEAN, ast.Boolean(val=val):
                return bool(val.lower() == "true")
            case EdmType.ENUM, ast.String(val=val):
                try:
                    return OperationStatus(val)
                except ValueError:
                    allowed = ", ".join(s.value for s in OperationStatus)
                    raise QueryOptionError(
                        f"'{val}' is not a valid value of {prop.edm_type}; valid values: {allowed}."
                    ) from None
            case EdmType.DOUBLE, ast.Integer(val=val) | ast.Float(val=val):
                number = float(val)
                if number != number or number in (float("inf"), float("-inf")):
                    raise QueryOptionError(f"The number {val} is out of range.")
                return number
            case EdmType.DATE_TIME_OFFSET, ast.DateTime(val=val):
                return _parse_datetime(val)
            case EdmType.DATE_TIME_OFFSET, ast.Date(val=val):
                return _parse_datetime(val + "T00:00:00Z")
        raise QueryOptionError(
            f"A value of type {prop.edm_type} is needed for '{prop.name}', found {_describe(node)}."
        )


def _parse_datetime(text: str) -> datetime:
    try:
        value = isoparse(text)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        # In UTC, 9999-12-31T23:59:59-01:00 is past datetime.max: OverflowError.
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise QueryOptionError(f"'{text}' is not a valid DateTimeOffset.") from None


def _nesting(op: ast._BoolOpToken, child: ast._Node) -> int:
    return 0 if isinstance(child, ast.BoolOp) and type(child.op) is type(op) else 1


def _is_property(node: ast._Node) -> bool:
    return isinstance(node, ast.Identifier | ast.Attribute)


def _path(node: ast._Node) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_path(node.owner)}/{node.attr}"
    if isinstance(node, ast.Identifier):
        name: str = node.full_name()
        return name
    return "?"


_NODE_NAMES: dict[type[ast._Node], str] = {
    ast.String: "a string",
    EnumLiteral: "an enum value",
    ast.Integer: "a number",
    ast.Float: "a number",
    ast.Boolean: "a Boolean",
    ast.Null: "null",
    ast.Date: "a date",
    ast.DateTime: "a date-time",
    ast.Time: "a time of day",
    ast.Duration: "a duration",
    ast.GUID: "a GUID",
    ast.List: "a list",
    ast.BinOp: "arithmetic (not supported)",
    ast.Call: "a function call",
    ast.CollectionLambda: "a lambda operator (not supported)",
    ast.UnaryOp: "a 'not' or minus expression",
    ast.Compare: "a comparison",
    ast.BoolOp: "an 'and' or 'or' expression",
}


def _describe(node: ast._Node) -> str:
    return _NODE_NAMES.get(type(node), "an unsupported expression")
