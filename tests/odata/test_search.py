"""`$search` in Graph's quoted syntax."""

from __future__ import annotations

import pytest

from datapolicy.errors import QueryOptionError
from datapolicy.odata.expressions import Junction, Negation, TextSearch
from datapolicy.odata.options import SEARCHABLE
from datapolicy.odata.search import parse_search

ALL = SEARCHABLE
USER_ID = tuple(p for p in SEARCHABLE if p.name == "userId")


def test_a_quoted_term_searches_every_searchable_property():
    assert parse_search('"alice"', SEARCHABLE) == TextSearch(ALL, "alice")


def test_property_prefix_narrows_the_search():
    assert parse_search('"userId:ab:c"', SEARCHABLE) == TextSearch(USER_ID, "ab:c")


def test_or_binds_looser_than_and_and_adjacent_terms_mean_and():
    node = parse_search('"a" "b" OR NOT "c"', SEARCHABLE)
    assert node == Junction(
        "or",
        Junction("and", TextSearch(ALL, "a"), TextSearch(ALL, "b")),
        Negation(TextSearch(ALL, "c")),
    )


def test_backslash_escapes_quotes_inside_a_term():
    assert parse_search(r'"say \"hi\""', SEARCHABLE) == TextSearch(ALL, 'say "hi"')


def test_a_url_is_not_mistaken_for_a_property_prefix():
    assert parse_search('"https://x"', SEARCHABLE) == TextSearch(ALL, "https://x")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ('"unterminated', "unbalanced quotes"),
        ('"a" OR', "expected a search term"),
        ('"progress:5"', "cannot be searched"),
        ('""', "empty"),
        (" ".join(['"x"'] * 40), "more than"),
    ],
)
def test_malformed_searches_are_explained(text, message):
    with pytest.raises(QueryOptionError, match=message):
        parse_search(text, SEARCHABLE)
