"""`$filter` parsing: what is accepted becomes a typed tree; everything else is a clear 400."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

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
