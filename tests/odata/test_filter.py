"""`$filter` parsing: what is accepted becomes a typed tree; everything else is a clear 400."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from datapolicy.errors import QueryOptionError
from datapolicy.model import PROPERTIES, OperationStatus
from datapolicy.odata.expressions import (
    Comparison,
    Constant,
    Junction,
    Membership,
    Negation,
    PropertyComparison,
    StringMatch,
)
from datapolicy.odata.filter import MAX_FILTER_LENGTH, parse_filter


def parse(text: str):
    return parse_filter(text, PROPERTIES)


def test_comparison_literals_take_the_property_type():
    assert parse("progress ge 50") == Comparison(PROPERTIES["progress"], "ge", 50.0)
    assert parse("status eq 'running'") == Comparison(
        PROPERTIES["status"], "eq", OperationStatus.RUNNING
    )
    assert parse("submittedDateTime lt 2024-05-01T10:00:00+02:00") == Comparison(
        PROPERTIES["submittedDateTime"], "lt", datetime(2024, 5, 1, 8, tzinfo=UTC)
    )


def test_a_date_literal_means_midnight_utc():
    node = parse("completedDateTime ge 2024-01-02")
    assert node == Comparison(
        PROPERTIES["completedDateTime"], "ge", datetime(2024, 1, 2, tzinfo=UTC)
    )


def test_literal_on_the_left_is_mirrored():
    assert parse("5 lt progress") == Comparison(PROPERTIES["progress"], "gt", 5.0)


def test_boolean_structure_and_precedence_are_kept():
    node = parse("not (userId eq 'a' or userId eq 'b') and progress gt -1.5")
    assert node == Junction(
        "and",
        Negation(
            Junction(
                "or",
                Comparison(PROPERTIES["userId"], "eq", "a"),
                Comparison(PROPERTIES["userId"], "eq", "b"),
            )
        ),
        Comparison(PROPERTIES["progress"], "gt", -1.5),
    )


def test_in_null_functions_and_property_comparisons():
    assert parse("status in ('running', 'failed')") == Membership(
        PROPERTIES["status"], (OperationStatus.RUNNING, OperationStatus.FAILED)
    )
    assert parse("completedDateTime eq null") == Comparison(
        PROPERTIES["completedDateTime"], "eq", None
    )
    assert parse("contains(storageLocation, 'it''s')") == StringMatch(
        "contains", PROPERTIES["storageLocation"], "it's"
    )
    assert parse("completedDateTime gt submittedDateTime") == PropertyComparison(
        PROPERTIES["completedDateTime"], "gt", PROPERTIES["submittedDateTime"]
    )
    assert parse("  true ") == Constant(True)


def test_a_one_value_in_list_needs_no_trailing_comma():
    """`status in ('running')` is OData's (and Graph's) one-value list; odata-query reads only
    `('running',)`, so the comma is added before it parses."""
    expected = Membership(PROPERTIES["status"], (OperationStatus.RUNNING,))
    assert parse("status in ('running')") == expected
    assert parse("(status in ( 'running' ))") == expected
    assert parse("status in ('running',)") == expected
    assert parse("progress in (5)") == Membership(PROPERTIES["progress"], (5.0,))


def test_a_guid_literal_compares_with_a_string_property():
    node = parse("id eq 1f2a3b4c-1111-2222-3333-444455556666")
    assert node == Comparison(PROPERTIES["id"], "eq", "1f2a3b4c-1111-2222-3333-444455556666")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope eq 1", "Could not find a property named 'nope'"),
        ("userId/foo eq 'x'", "Property paths are not supported"),
        ("progress gt 'abc'", "A value of type Edm.Double is needed for 'progress'"),
        ("userId eq 5", "A value of type Edm.String is needed"),
        ("status eq 'bogus'", "'bogus' is not a valid value"),
        ("progress gt null", "null can only be compared"),
        ("concat(userId, 'a') eq 'b'", "'concat' is not supported"),
        ("startswith(progress, 'a')", "needs a string property"),
        ("startswith(userId, userId)", "must be a string literal"),
        ("progress add 1 eq 2", "arithmetic"),
        ("userId eq", "Syntax error in $filter at position 6"),
        ("userId eq 'a' xor", "Syntax error"),
        ("userId", "cannot be used as a condition"),
        ("'a'", "needs a condition"),
        ("progress eq submittedDateTime", "Cannot compare"),
        ("submittedDateTime gt 2024-13-45T00:00:00Z", "Syntax error"),
        ("userId in ()", "Syntax error"),
        ("", "empty"),
        ("status eq microsoft.graph.dataPolicyOperationStatus'bogus'", "'bogus' is not a valid"),
        ("status in ('running', microsoft.graph.dataPolicyOperationStatus'Done')", "'Done' is"),
        ("status eq microsoft.graph.otherEnum'complete'", "found a value of the type 'microsoft"),
        ("userId eq microsoft.graph.dataPolicyOperationStatus'complete'", "Edm.String is needed"),
        ("status eq microsoft.graph.dataPolicyOperationStatus 'complete'", "Syntax error"),
        ("startswith(status, microsoft.graph.dataPolicyOperationStatus'c')", "found an enum"),
        ("toLower(userId) eq 'a'", "'tolower' is not supported"),
        ("startsWith(userId)", "'startswith' takes 2 arguments. 1 given."),
    ],
)
def test_unsupported_or_malformed_filters_are_explained(text, message):
    with pytest.raises(QueryOptionError, match=re.escape(message)):
        parse(text)


def test_overlong_and_deeply_nested_filters_are_refused_not_crashed():
    with pytest.raises(QueryOptionError, match="limit"):
        parse("userId eq 'a' or " * 400 + "true")
    deep = "not " * 1000 + "true"
    assert len(deep) < MAX_FILTER_LENGTH
    with pytest.raises(QueryOptionError, match="nested too deeply"):
        parse(deep)


def test_a_long_chain_of_one_operator_is_not_too_deep():
    long_chain = " or ".join(f"progress eq {n}" for n in range(200))
    assert len(long_chain) < MAX_FILTER_LENGTH
    assert isinstance(parse(long_chain), Junction)


STATUS_TYPE = "microsoft.graph.dataPolicyOperationStatus"
MEMBERS = [status.value for status in OperationStatus]


def any_case(name: str) -> st.SearchStrategy[str]:
    """`name` with each letter in either case."""
    return st.tuples(*(st.sampled_from(sorted({c.lower(), c.upper()})) for c in name)).map("".join)


def enum_literal(member: str) -> st.SearchStrategy[str]:
    """A status member written as a plain string or namespace-qualified, as Graph accepts it."""
    return st.sampled_from([f"'{member}'", f"{STATUS_TYPE}'{member}'"])


@st.composite
def graph_form(draw: st.DrawFn) -> tuple[str, str]:
    """A filter in the forms Graph accepts (function names in any case, qualified enum
    literals) and the same filter in the canonical forms: lower-case names, plain strings."""
    kind = draw(st.sampled_from(["function", "comparison", "in"]))
    if kind == "function":
        name = draw(st.sampled_from(["startswith", "endswith", "contains"]))
        prop = draw(st.sampled_from(["userId", "storageLocation", "status"]))
        text = f"({prop}, 'it''s')"
        return draw(any_case(name)) + text, name + text
    if kind == "comparison":
        op = draw(st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le"]))
        member = draw(st.sampled_from(MEMBERS))
        literal = draw(enum_literal(member))
        if draw(st.booleans()):
            return f"{literal} {op} status", f"'{member}' {op} status"
        return f"status {op} {literal}", f"status {op} '{member}'"
    members = draw(st.lists(st.sampled_from(MEMBERS), min_size=1, max_size=4))
    written = [draw(enum_literal(m)) for m in members]
    return (
        f"status in ({', '.join(written)})",
        f"status in ({', '.join(repr(m) for m in members)})",
    )


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(pair=graph_form(), join=st.sampled_from(["and", "or"]), other=graph_form())
@example(
    pair=("STARTSWITH(userId, 'it''s')", "startswith(userId, 'it''s')"),
    join="and",
    other=(f"status gt {STATUS_TYPE}'running'", "status gt 'running'"),
)
def test_graph_forms_mean_their_canonical_forms(pair, join, other):
    """`startsWith`/`STARTSWITH` are `startswith`, and `microsoft.graph.dataPolicyOperationStatus
    'complete'` is `'complete'`, wherever they appear: each parses to the same tree as the
    canonical text (the reference)."""
    graph_text = f"({pair[0]}) {join} ({other[0]})"
    canonical = f"({pair[1]}) {join} ({other[1]})"
    assert parse(graph_text) == parse(canonical)
