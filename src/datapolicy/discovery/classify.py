"""Column classification: proposed data categories for a column, from its name, type and a
bounded sample of its values. (A placeholder until the classifier of issue 18 lands: names
and e-mail-shaped values only.) Samples are only looked at here: never stored or logged."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SECRET = re.compile(r"(password|passwd|secret|token|api_?key|hash)", re.IGNORECASE)
_NAMES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"e_?mail", re.IGNORECASE), "user.contact.email"),
    (re.compile(r"phone|mobile", re.IGNORECASE), "user.contact.phone_number"),
    (re.compile(r"^(first_?|last_?|full_?|display_?)?name$", re.IGNORECASE), "user.name"),
    (re.compile(r"street|address|postcode|zip|city", re.IGNORECASE), "user.contact.address"),
    (re.compile(r"birth", re.IGNORECASE), "user.demographic.date_of_birth"),
    (re.compile(r"iban|card_?number", re.IGNORECASE), "user.financial"),
)


@dataclass(frozen=True, slots=True)
class ColumnClass:
    """What a column looks like: proposed categories, whether it is a secret to exclude, and
    why (reasons never quote a sampled value)."""

    categories: tuple[str, ...] = ()
    exclude: bool = False
    reasons: tuple[str, ...] = ()
    personal: bool = False  # looks like personal data worth exporting (a secret alone is not)


def classify_column(
    table: str, column: str, sql_type: str, samples: Sequence[object]
) -> ColumnClass:
    """The proposed categories of `table.column` (of `sql_type`, with `samples` of its values)."""
    if _SECRET.search(column):
        return ColumnClass(exclude=True, reasons=(f"the name '{column}' is a secret's",))
    for pattern, category in _NAMES:
        if pattern.search(column):
            return ColumnClass((category,), reasons=(f"the name '{column}'",), personal=True)
    texts = [value for value in samples if isinstance(value, str)]
    if texts and sum(bool(_EMAIL.match(value)) for value in texts) * 2 > len(texts):
        reasons = ("sampled values are e-mail addresses",)
        return ColumnClass(("user.contact.email",), reasons=reasons, personal=True)
    return ColumnClass()
