"""Record values as a person reads them in the package's report (report.py).

A value leaves the JSON Lines as JSON; the report shows it as words: dates and times spelled
out (`29 February 2024`), `yes`/`no` for booleans, binary data as its size, a missing value as
`no value`. Text is shown as it is, except characters that would not be seen or would change
what the page shows: control characters become their visible symbols (U+0001 is `␁`), C1
controls and bidirectional controls their code in brackets (`[U+202E]`), lone surrogates
U+FFFD, and text longer than `MAX_VALUE_CHARS` is cut there (the JSON Lines file has all of
it). The HTML escaping is the template's (autoescape), never done here.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import date, time
from decimal import Decimal
from typing import Any

MAX_VALUE_CHARS = 500  # characters of one value shown in the report
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_DATE = r"(\d{4})-(\d{2})-(\d{2})"
_DATE_ONLY = re.compile(_DATE)
_DATETIME = re.compile(_DATE + r"[T ](\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?(Z|[+-]\d{2}(?::\d{2})?)?")
# Characters that reorder the text around them: a value holding a right-to-left override
# (U+202E) would show `Evil\u202etown` as "Evilnwot", not the value stored. Isolating the cell
# (bdi, unicode-bidi) only keeps the reordering inside it, so they are shown as codes instead.
# Right-to-left scripts need none of them: the page lays out Arabic and Hebrew by itself
# (unicode-bidi: plaintext). U+061C, U+200E-F, U+202A-E, U+2066-9.
_BIDI_CONTROLS = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSEEN = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff{_BIDI_CONTROLS}]")  # not \t, \n


@dataclass(frozen=True, slots=True)
class Cell:
    """A value as shown: `text`, what kind of value it is (the page styles a `null` and a
    `binary` apart from text), the ISO 8601 value of a date (for `<time datetime>`), and how
    many characters were cut from the end."""

    text: str
    kind: str = "text"  # null, text, number, boolean, date, binary, json
    machine: str | None = None
    cut: int = 0


def readable(value: Any) -> Cell:
    """A JSON value (as `json.loads(..., parse_float=Decimal)` reads it) as shown."""
    if value is None:
        return Cell("no value", "null")
    if isinstance(value, bool):
        return Cell("yes" if value else "no", "boolean")
    if isinstance(value, int | Decimal):
        return Cell(str(value), "number")
    if isinstance(value, str):
        return _text(value)
    size = _binary_size(value)
    if size is not None:
        return Cell(f"binary data, {human_size(size)}", "binary")
    return _cut(_compact(value), "json")


def visible(text: str) -> str:
    """Text with every character that would not be seen shown as a symbol (names: tables,
    columns, files), neither spelled out nor cut."""
    return _UNSEEN.sub(_visible, text)


def human_size(size: int) -> str:
    """Bytes in decimal units, as a person reads them: `512 bytes`, `1.5 kB`, `2.0 GB`."""
    if size < 1000:
        return "1 byte" if size == 1 else f"{size} bytes"
    amount, unit = size / 1000, "kB"
    for larger in ("MB", "GB", "TB"):
        if amount < 999.95:
            break
        amount, unit = amount / 1000, larger
    return f"{amount:.1f} {unit}"


def _text(text: str) -> Cell:
    match = _DATE_ONLY.fullmatch(text)
    if match:
        day = _date(*match.groups())
        if day is not None:
            return Cell(_day_in_words(day), "date", text)
    match = _DATETIME.fullmatch(text)
    if match:
        spelled = _datetime_in_words(match)
        if spelled is not None:
            return Cell(spelled, "date", text)
    return _cut(visible(text), "text")


def _date(year: str, month: str, day: str) -> date | None:
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        return None


def _day_in_words(day: date) -> str:
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def _datetime_in_words(match: re.Match[str]) -> str | None:
    year, month, day_, hour, minute, second, fraction, zone = match.groups()
    day = _date(year, month, day_)
    try:
        time(int(hour), int(minute), int(second))
    except ValueError:
        return None
    if day is None:
        return None
    clock = f"{hour}:{minute}:{second}{fraction or ''}"
    if zone in ("Z", "+00:00", "+00", "-00:00"):
        clock += " UTC"
    elif zone:
        clock += f" (UTC{zone})"
    return f"{_day_in_words(day)}, {clock}"


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # the Control Pictures block: U+0001 is shown as ␁
    if code == 0x7F:
        return "\u2421"  # ␡
    if 0xD800 <= code <= 0xDFFF:
        return "\ufffd"  # a lone surrogate
    return f"[U+{code:04X}]"  # a C1 or bidirectional control


def _cut(text: str, kind: str) -> Cell:
    if len(text) <= MAX_VALUE_CHARS:
        return Cell(text, kind)
    return Cell(text[:MAX_VALUE_CHARS], kind, cut=len(text) - MAX_VALUE_CHARS)


def _binary_size(value: Any) -> int | None:
    """The size of binary data (`{"base64": ...}`, as jsonlines.py writes bytes), else None."""
    if not (isinstance(value, dict) and len(value) == 1 and isinstance(value.get("base64"), str)):
        return None
    try:
        return len(base64.b64decode(value["base64"], validate=True))
    except (binascii.Error, ValueError):
        return None


def _compact(value: Any) -> str:
    """A JSON document as compact JSON text, its numbers as written."""
    if isinstance(value, dict):
        items = (f"{_compact(k)}:{_compact(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_compact(v) for v in value) + "]"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return '"' + visible(escaped) + '"'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
