"""Request bodies that name a member twice in one object are refused (web/routes/payloads.py
`read_json_object`): JSON leaves their meaning open, and a reader that keeps the other value
(a proxy, a log) would disagree with what was done. Generated documents, with and without a
repeated member at any depth, against a reference that walks the members as written."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from datapolicy.errors import InvalidRequest
from datapolicy.web.routes.payloads import read_json_object

# A document as written: an object is its list of (name, value) pairs, in order, repeats allowed.
NAMES = st.sampled_from(["dryRun", "storageLocation", "userId", "a", "é", "\u202e", ""])
SCALARS = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=5)


def _objects(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(st.tuples(NAMES, children), max_size=4).map(Pairs) | st.lists(
        children, max_size=3
    )


class Pairs(list[tuple[str, Any]]):
    """An object's members as written."""


DOCUMENTS = st.lists(
    st.tuples(NAMES, st.recursive(SCALARS, _objects, max_leaves=12)), max_size=5
).map(Pairs)


def _text(value: Any) -> str:
    if isinstance(value, Pairs):
        members = (f"{json.dumps(name)}:{_text(item)}" for name, item in value)
        return "{" + ",".join(members) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_text(item) for item in value) + "]"
    return json.dumps(value)


def _repeats(value: Any) -> bool:
    """The reference: whether any object of the document names a member twice."""
    if isinstance(value, Pairs):
        names = [name for name, _ in value]
        return len(set(names)) < len(names) or any(_repeats(item) for _, item in value)
    if isinstance(value, list):
        return any(_repeats(item) for item in value)
    return False


async def _read(body: bytes) -> dict[str, Any]:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(b"content-type", b"application/json")],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    return await read_json_object(Request(scope, receive))


@given(DOCUMENTS)
async def test_a_body_is_refused_exactly_when_an_object_names_a_member_twice(document: Pairs):
    body = _text(document).encode()
    if _repeats(document):
        with pytest.raises(InvalidRequest, match="more than once"):
            await _read(body)
    else:
        assert await _read(body) == json.loads(body)


async def test_an_erasure_body_that_says_dry_run_twice_is_refused():
    with pytest.raises(InvalidRequest, match="'dryRun' more than once"):
        await _read(b'{"dryRun": true, "dryRun": false}')


async def test_a_body_nested_past_the_standard_parser_is_a_400_not_a_500():
    depth = 1000  # within orjson's 1,024 levels, past what the standard library's parser goes
    with pytest.raises(InvalidRequest):
        await _read(b'{"a":' * depth + b"1" + b"}" * depth)
