"""jsonlines.json_document: a stored JSON document re-spelled one way, checked against Python's own
JSON parser as the reference. The spelling must keep every value (numbers exactly, as decimals),
sort keys, drop whitespace, and be a fixed point, whatever spacing, escaping, number notation and
key order the database kept."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from datapolicy.engine.sources.jsonlines import json_document

NUMBERS = (
    st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.decimals(allow_nan=False, allow_infinity=False)
)
DOCUMENTS = st.recursive(
    st.none() | st.booleans() | NUMBERS | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=15,
)


def spelled(value: Any, indent: int | None, ascii_only: bool) -> str:
    """`value` as JSON text some database might have kept (Decimals as their own literal)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list):
        inner = ", ".join(spelled(v, indent, ascii_only) for v in value)
        return f"[{inner}]" if indent is None else f"[\n{inner}\n]"
    if isinstance(value, dict):
        inner = ",  ".join(
            f"{json.dumps(k, ensure_ascii=ascii_only)} : {spelled(v, indent, ascii_only)}"
            for k, v in reversed(list(value.items()))
        )
        return "{" + inner + "}"
    return json.dumps(value, ensure_ascii=ascii_only)


def exact(text: str | bytes) -> Any:
    """The reference reading: every number a Decimal, so nothing is rounded."""
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def surrogate_free(value: Any) -> bool:
    if isinstance(value, str):
        return not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, list):
        return all(surrogate_free(v) for v in value)
    if isinstance(value, dict):
        return all(surrogate_free(k) and surrogate_free(v) for k, v in value.items())
    return True


@settings(max_examples=150, deadline=None)
@given(document=DOCUMENTS, indent=st.none() | st.just(2), ascii_only=st.booleans())
@example(document=[Decimal("1E+400"), Decimal("-0.0"), 2**70, 1e-7], indent=None, ascii_only=True)
@example(document={"a": Decimal("1.50"), "b": Decimal("1e2")}, indent=2, ascii_only=False)
def test_a_document_keeps_its_values_in_one_spelling(document, indent, ascii_only):
    """Whatever spacing, escaping, number notation and key order a database kept, the document
    is written with the same values (by Python's parser, numbers as decimals; -0 as 0), keys
    sorted, no whitespace, and re-spelling the result changes nothing."""
    text = spelled(document, indent, ascii_only)
    written = json_document(text)
    if not surrogate_free(exact(text)):
        assert written == text  # no UTF-8 spelling: kept as its text
        return
    assert isinstance(written, orjson.Fragment)
    out = orjson.dumps(written)
    assert exact(out) == exact(text)
    keys: list[list[str]] = []
    json.loads(out, object_pairs_hook=lambda pairs: keys.append([k for k, _ in pairs]))
    assert all(names == sorted(names) for names in keys)
    assert not re.search(rb"\s", re.sub(rb'"(?:[^"\\]|\\.)*"', b"", out))  # none outside strings
    assert orjson.dumps(json_document(out.decode())) == out
