"""What a `mask` rule writes in place of a value.

Every strategy is idempotent: masking a masked value gives it back unchanged, so an erasure that
is retried after its database committed changes nothing more (and counts no cells):

- `null`: NULL;
- `{ value = ... }`: the fixed replacement;
- `hash`: `h:` and the hex HMAC-SHA256 of the value's text under the erasure secret, the same for
  the same value in every table (joins and counts survive, the value does not); a value that
  already has that shape is left alone;
- `year`: a date or timestamp truncated to the first instant of its year (a date held as text,
  `YYYY-MM-DD...`, keeps its shape, its other digits zeroed).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from datapolicy.config import MaskStrategy, MaskValue

HASH_PREFIX = "h:"
HASH_LENGTH = len(HASH_PREFIX) + 64  # what a column must hold for `hash`
_HASHED = re.compile(r"^h:[0-9a-f]{64}$")
_DATE_TEXT = re.compile(r"^([0-9]{4})-[0-9]{2}-[0-9]{2}(.*)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Masker:
    """The strategies, under one secret (the `hash` key: auth/keys.py `erasure_secret`)."""

    secret: bytes

    def mask(self, strategy: MaskStrategy | MaskValue, value: Any) -> Any:
        if isinstance(strategy, MaskValue):
            return strategy.value
        if value is None or strategy == "null":
            return None
        if strategy == "hash":
            return self.hash(value)
        return truncate_to_year(value)

    def hash(self, value: Any) -> str:
        text = value if isinstance(value, str) else str(value)
        if _HASHED.match(text):
            return text
        digest = hmac.new(self.secret, text.encode("utf-8"), hashlib.sha256).hexdigest()
        return HASH_PREFIX + digest


def truncate_to_year(value: Any) -> Any:
    """The first instant of the value's year, of the value's own type; ValueError for a value
    that is no date."""
    if isinstance(value, datetime):
        return value.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    if isinstance(value, date):
        return value.replace(month=1, day=1)
    if isinstance(value, str) and (found := _DATE_TEXT.match(value)):
        return f"{found.group(1)}-01-01{re.sub(r'[0-9]', '0', found.group(2))}"
    raise ValueError("the `year` mask takes dates and timestamps only")
