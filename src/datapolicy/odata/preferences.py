"""The `Prefer` request header (RFC 7240), as far as OData's `odata.maxpagesize` goes.

A client states the page size it would like (`Prefer: odata.maxpagesize=50`, or OData 4.01's
`maxpagesize=50`); the service may honour it and says so with `Preference-Applied`. As RFC 7240
requires, preferences this service does not know, and a maxpagesize that is not a positive
integer, are ignored rather than refused: a preference never makes a request fail.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAXPAGESIZE_NAMES = ("odata.maxpagesize", "maxpagesize")
_PREFERENCE = re.compile(r'^\s*([^\s=;]+)\s*(?:=\s*("[^"]*"|[^\s;]*))?')
_POSITIVE = re.compile(r"^[0-9]{1,12}$")


def preferred_page_size(headers: Iterable[str]) -> tuple[str, int] | None:
    """The maxpagesize preference in the `Prefer` header values, as the name the client wrote
    (lower-cased) and the size; None when there is none or it is not valid. Only its first
    instance counts (RFC 7240, section 2)."""
    for header in headers:
        for preference in header.split(","):
            match = _PREFERENCE.match(preference)
            if match is None or match.group(1).lower() not in MAXPAGESIZE_NAMES:
                continue
            value = (match.group(2) or "").strip('"')
            if not _POSITIVE.match(value) or int(value) == 0:
                return None
            return match.group(1).lower(), int(value)
    return None
