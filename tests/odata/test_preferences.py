"""`Prefer: odata.maxpagesize`: read as RFC 7240 says, a preference that is not understood or
not valid is ignored, never refused."""

from __future__ import annotations

import pytest

from datapolicy.odata.preferences import preferred_page_size


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (["odata.maxpagesize=50"], ("odata.maxpagesize", 50)),
        (["ODATA.MaxPageSize = 7"], ("odata.maxpagesize", 7)),
        (["maxpagesize=3"], ("maxpagesize", 3)),  # OData 4.01's name
        (['odata.maxpagesize="12"'], ("odata.maxpagesize", 12)),
        (["return=minimal, odata.maxpagesize=9;x=y"], ("odata.maxpagesize", 9)),
        (["respond-async", "odata.maxpagesize=2"], ("odata.maxpagesize", 2)),
        (["odata.maxpagesize=2, odata.maxpagesize=5"], ("odata.maxpagesize", 2)),
    ],
)
def test_the_first_maxpagesize_preference_is_read(headers, expected):
    assert preferred_page_size(headers) == expected


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [""],
        ["return=minimal"],
        ["odata.maxpagesize"],
        ["odata.maxpagesize=0"],
        ["odata.maxpagesize=-5"],
        ["odata.maxpagesize=ten"],
        ["odata.maxpagesize=1.5"],
        ["odata.maxpagesize=9999999999999"],
        ["odata.maxpagesize=x, odata.maxpagesize=5"],  # only the first instance counts
        ["odata.maxpagesizes=5"],
    ],
)
def test_a_missing_or_invalid_preference_is_ignored(headers):
    assert preferred_page_size(headers) is None
