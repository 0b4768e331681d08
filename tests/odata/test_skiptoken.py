"""`$skiptoken`: the page size of an `odata.maxpagesize` preference travels in the token, and a
token whose carried size was altered is refused like any other tampered token."""

from __future__ import annotations

import base64

import orjson
import pytest

from datapolicy.errors import QueryOptionError
from datapolicy.odata.skiptoken import SkipToken, _fingerprint, effective_order


def token(*extra: object) -> str:
    fingerprint = _fingerprint(effective_order(()))
    payload = [1, fingerprint, ["2026-01-01T00:00:00.000000Z", "an-id"], *extra]
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


def test_a_carried_page_size_round_trips():
    decoded = SkipToken.decode(token(25), ())
    assert decoded.maxpagesize == 25
    assert SkipToken.decode(decoded.encode(), ()) == decoded


def test_a_token_without_a_page_size_carries_none():
    assert SkipToken.decode(token(), ()).maxpagesize is None


@pytest.mark.parametrize("carried", [0, -1, 2**31, 1.5, True, "25", None, [25]])
def test_an_altered_page_size_is_an_invalid_token(carried):
    """Also an explicit null: the token never holds one (no size: no fourth element)."""
    with pytest.raises(QueryOptionError, match="not valid"):
        SkipToken.decode(token(carried), ())
