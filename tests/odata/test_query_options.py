"""System query options: names, duplicates, per-request allow-lists, and each option's syntax."""

from __future__ import annotations

import pytest

from datapolicy.errors import QueryOptionError
from datapolicy.model import PROPERTIES
from datapolicy.odata.options import (
    COUNT_OPTIONS,
    ENTITY_OPTIONS,
    LIST_OPTIONS,
    MAX_PAGE_SIZE,
    OrderBy,
    parse_query_options,
)


def parse(*pairs: tuple[str, str], allowed=LIST_OPTIONS):
    return parse_query_options(pairs, allowed)


def test_names_match_with_or_without_dollar_and_in_any_case():
    assert parse(("$top", "5")).top == 5
    assert parse(("top", "5")).top == 5
    assert parse(("$TOP", "5")).top == 5


def test_custom_options_without_dollar_are_ignored():
    assert parse(("api-version", "2"), ("foo", "bar")).raw == {}


def test_unknown_dollar_options_and_duplicates_are_refused():
    with pytest.raises(QueryOptionError, match="'\\$foo' is not supported"):
        parse(("$foo", "1"))
    with pytest.raises(QueryOptionError, match="more than once"):
        parse(("$top", "1"), ("top", "2"))


def test_options_are_checked_against_the_request_kind():
    with pytest.raises(QueryOptionError, match="not allowed on this request"):
        parse(("$top", "1"), allowed=COUNT_OPTIONS)
    with pytest.raises(QueryOptionError, match="not allowed"):
        parse(("$orderby", "id"), allowed=ENTITY_OPTIONS)


@pytest.mark.parametrize("value", ["-1", "1.5", "abc", "", " 5", "1e3"])
def test_top_and_skip_take_non_negative_integers(value):
    with pytest.raises(QueryOptionError, match="non-negative integer"):
        parse(("$top", value))
    with pytest.raises(QueryOptionError, match="non-negative integer"):
        parse(("$skip", value))


def test_top_has_a_maximum_page_size():
    assert parse(("$top", str(MAX_PAGE_SIZE))).top == MAX_PAGE_SIZE
    with pytest.raises(QueryOptionError, match="maximum"):
        parse(("$top", str(MAX_PAGE_SIZE + 1)))


def test_orderby_takes_several_properties_with_directions():
    options = parse(("$orderby", "status desc, submittedDateTime ,progress ASC"))
    assert options.orderby == (
        OrderBy(PROPERTIES["status"], True),
        OrderBy(PROPERTIES["submittedDateTime"], False),
        OrderBy(PROPERTIES["progress"], False),
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nope", "Could not find a property named 'nope'"),
        ("id sideways", "Invalid \\$orderby item"),
        ("id,id desc", "appears twice"),
        ("", "Invalid \\$orderby item"),
    ],
)
def test_bad_orderby_is_explained(value, message):
    with pytest.raises(QueryOptionError, match=message):
        parse(("$orderby", value))


def test_select_keeps_order_removes_duplicates_and_knows_star():
    assert parse(("$select", "status, id,status")).select == (
        PROPERTIES["status"],
        PROPERTIES["id"],
    )
    assert parse(("$select", "*")).select == tuple(PROPERTIES.values())
    with pytest.raises(QueryOptionError, match="Could not find a property named 'x'"):
        parse(("$select", "id,x"))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("userId", "not a navigation property"),
        ("owner", "Could not find a property named 'owner'"),
        ("*($levels=2)", "no navigation properties"),
        ("*/$ref", "no navigation properties"),
        ("*,owner", "Could not find a property named 'owner'"),
        (" , *", "empty property name"),
    ],
)
def test_expand_naming_a_property_is_a_400_naming_it(value, message):
    with pytest.raises(QueryOptionError, match=message):
        parse(("$expand", value))


@pytest.mark.parametrize("value", ["*", " * ", "*,*"])
def test_expand_star_expands_nothing_and_is_accepted(value):
    """Graph's clients send `$expand=*`; this entity has no navigation property to expand, so
    the answer is the same as without it."""
    assert parse(("$expand", value)).select is None


def test_count_takes_true_or_false():
    assert parse(("$count", "TRUE")).count is True
    with pytest.raises(QueryOptionError, match="true or false"):
        parse(("$count", "yes"))
