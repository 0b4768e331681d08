"""Records as JSON Lines: the one encoding every source's rows leave in.

Sources hand the package writer encoded bytes, not rows, so that a source whose database can
encode its own rows (PostgreSQL's `to_json`, streamed by COPY: see `sql.py`) skips Python's
per-row work entirely. Rows that Python encodes are written exactly as PostgreSQL would write
them wherever both can, so a package's JSON does not depend on which path made it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class JsonLines:
    """Encoded records: one JSON object per line, each line ending in a newline."""

    data: bytes
    records: int


def encode_rows(rows: Iterable[Mapping[str, Any]]) -> JsonLines:
    lines = [orjson.dumps(row, default=_json_default) for row in rows]
    lines.append(b"")
    return JsonLines(b"\n".join(lines), len(lines) - 1)


def _json_default(value: Any) -> Any:
    """Database values that JSON has no type for.

    Decimals are JSON numbers written with all their digits (`12.50`, never `1.25E+1`), as
    PostgreSQL's `to_json` writes them; the ones JSON cannot hold (NaN, infinities) are strings,
    as there. Bytes are `{"base64": ...}`. Anything else (times with zones, UUIDs) is its text."""
    if isinstance(value, Decimal):
        if value.is_finite():
            return orjson.Fragment(format(value, "f"))
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return {"base64": base64.b64encode(bytes(value)).decode()}
    return str(value)
