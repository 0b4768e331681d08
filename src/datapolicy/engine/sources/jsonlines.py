"""Records as JSON Lines: the one encoding every source's rows leave in.

Sources hand the package writer encoded bytes, not rows, so that a source whose database can
encode its own rows (PostgreSQL's `to_json`, streamed by COPY: see `sql.py`) skips Python's
per-row work entirely. Rows that Python encodes are written exactly as PostgreSQL would write
them wherever both can, so a package's JSON does not depend on which path made it.

JSON documents stored in the databases (`json_document`) are re-spelled in one way, so that the
same document reads the same from PostgreSQL's jsonb (which reorders keys and rewrites numbers),
its json, MariaDB and SQLite (which keep the text as written): keys sorted, no spaces, numbers
exact. docs/package-format.md has the table of what each type becomes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class JsonLines:
    """Encoded records: one JSON object per line, each line ending in a newline."""

    data: bytes
    records: int


# JSON numbers in a document whose plain spelling would be longer are written with an exponent
# (`1E+400`): a short document of huge exponents must not become gigabytes of zeros.
JSON_NUMBER_MAX_EXPONENT = 100


def encode_rows(rows: Iterable[Mapping[str, Any]]) -> JsonLines:
    """Rows as JSON Lines. Times of day, and datetimes with trailing zeros in their fraction,
    must arrive as `iso8601` text (`sqltypes` reads them so): orjson writes six digits of
    fraction, where PostgreSQL's `to_json` (the COPY path) trims them, and orjson 3.13 writes
    `time(0, 0, 0, 10000)` as `00:00:00.10000`."""
    lines = [orjson.dumps(row, default=_json_default) for row in rows]
    lines.append(b"")
    return JsonLines(b"\n".join(lines), len(lines) - 1)


def json_document(text: str | bytes) -> orjson.Fragment | str:
    """A stored JSON document, spelled one way: keys sorted (the last of a repeated key kept,
    as jsonb does), no spaces, every number exact (`1.50` stays `1.50`, `1e2` is `100`, `-0` is
    `0`, as jsonb's numeric writes them). Text that is not JSON, or holds a string JSON cannot
    carry in UTF-8 (a lone surrogate escape) or nests too deep to re-spell, is kept as a string
    of its text."""
    try:
        document = json.loads(text, parse_float=_json_number, parse_int=_json_number)
        return orjson.Fragment(
            orjson.dumps(document, default=_json_number_default, option=orjson.OPT_SORT_KEYS)
        )
    except (ValueError, RecursionError, orjson.JSONEncodeError):
        return text if isinstance(text, str) else text.decode("utf-8", "replace")


def _json_number(literal: str) -> int | Decimal:
    number = Decimal(literal)
    if number.is_zero():
        number = number.copy_abs()
    if number.as_tuple().exponent == 0 and number.adjusted() < 20:
        as_int = int(number)
        if -(2**63) <= as_int < 2**64:  # what orjson writes natively
            return as_int
    return number


def _json_number_default(value: Any) -> Any:
    if isinstance(value, Decimal) and abs(value.adjusted()) > JSON_NUMBER_MAX_EXPONENT:
        exact = Context(prec=len(value.as_tuple().digits), Emax=MAX_EMAX, Emin=MIN_EMIN)
        return orjson.Fragment(str(value.normalize(exact)))
    return _json_default(value)


def _json_default(value: Any) -> Any:
    """Database values that JSON has no type for.

    Decimals are JSON numbers written with all their digits (`12.50`, never `1.25E+1`), as
    PostgreSQL's `to_json` writes them; the ones JSON cannot hold (NaN, infinities) are strings,
    as there. Bytes are `{"base64": ...}`. A duration (MySQL/MariaDB `TIME`, read as a
    timedelta) is `[-]HH:MM:SS[.fraction]`, without the fraction's trailing zeros, as
    `iso8601`. Anything else (UUIDs, network addresses) is its text."""
    if isinstance(value, Decimal):
        if value.is_finite():
            return orjson.Fragment(format(value, "f"))
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return {"base64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, timedelta):
        return _duration(value)
    return str(value)


def _duration(value: timedelta) -> str:
    sign = "-" if value < timedelta(0) else ""
    microseconds = abs(value) // timedelta(microseconds=1)
    seconds, fraction = divmod(microseconds, 1_000_000)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    text = f"{sign}{hours:02d}:{minute:02d}:{second:02d}"
    return f"{text}.{fraction:06d}".rstrip("0") if fraction else text


def iso8601(value: datetime | time) -> str:
    """ISO 8601 as PostgreSQL writes it: a fraction of a second without its trailing zeros
    (`12:00:00.5`, `12:00:00.01`), where Python writes six digits."""
    text = value.isoformat()
    if value.microsecond % 10 or not value.microsecond:
        return text
    head, _, rest = text.partition(".")
    return f"{head}.{rest[:6].rstrip('0')}{rest[6:]}"


def datetime_value(value: datetime) -> datetime | str:
    """`value` itself where orjson writes it as `iso8601` does (most: orjson is the fast way),
    else its `iso8601` text."""
    if value.microsecond % 10 or not value.microsecond:
        return value
    return iso8601(value)
