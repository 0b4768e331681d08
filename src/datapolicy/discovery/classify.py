"""One column -> proposed Fides data categories, whether it is a secret to exclude from exports,
and why, from its name, its SQL type and a bounded sample of its values (docs/classification.md).

The name proposes a category on its own (discovery/names.py); the values confirm it, or
propose one when the name says nothing (discovery/values.py). Values alone must match in at
least `VALUES_ALONE` of the non-null samples (and at least `MIN_SAMPLES` of them); values
confirm a name at `CONFIRMS`; at most `MAX_VALUES` non-null samples are read. The SQL type
vetoes a name that cannot hold what it says (a boolean `email`). Samples stay in this process:
nothing here logs, and a reason quotes counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from datapolicy.discovery.names import NameHint, match_name
from datapolicy.discovery.values import (
    CARD,
    DETECTORS,
    EMAIL,
    IBAN,
    INTERNATIONAL_PHONE,
    IP_ADDRESS,
    JWT,
    NATIONAL_ID,
    PASSWORD_HASH,
    PHONE_SHAPED,
    RANDOM_TOKEN,
    Detector,
    Measure,
    birth_date,
    measure,
)

VALUES_ALONE = 0.8
"""The fraction of non-null samples a detector must accept to propose a category by itself."""

CONFIRMS = 0.5
"""The fraction of non-null samples that confirms what the name proposes."""

MIN_SAMPLES = 3
"""Fewer non-null samples than this are no evidence by themselves."""

MAX_VALUES = 250
"""At most this many of the non-null samples are read, an even spread over them: enough to
tell 80% from 50%, at a quarter of the work of a thousand."""

ALONE: tuple[Detector, ...] = tuple(detector for detector in DETECTORS if detector.alone)
"""The detectors whose matches are evidence without the name (in the order they are tried)."""

_CONFIRMERS: dict[str, tuple[Detector, ...]] = {
    "user.contact.email": (EMAIL,),
    "user.contact.phone_number": (INTERNATIONAL_PHONE, PHONE_SHAPED),
    "user.contact.fax_number": (INTERNATIONAL_PHONE, PHONE_SHAPED),
    "user.financial.bank_account": (IBAN,),
    "user.financial.credit_card": (CARD,),
    "user.government_id.national_identification_number": (NATIONAL_ID,),
    "user.device.ip_address": (IP_ADDRESS,),
    "user.authorization.password": (PASSWORD_HASH, RANDOM_TOKEN),
    "user.authorization.credentials": (JWT, RANDOM_TOKEN),
}
"""The detectors that can confirm a name's category (the date of birth's is added per call)."""

_NO_VALUE_DETECTION = frozenset({"bool", "date", "uuid"})
"""SQL type families whose values none of the `ALONE` detectors can match."""

SECRET_CATEGORIES = frozenset({"user.authorization.password", "user.authorization.credentials"})
"""Categories that make a column a secret, proposed as excluded from exports."""


@dataclass(frozen=True)
class ColumnClass:
    """What a column looks like it holds.

    `categories`: Fides data category keys, strongest evidence first. `exclude`: a secret
    (password hash, token, key) that an export should leave out. `reasons`: the evidence in
    words, quoting counts and never a value. `personal`: whether it looks like personal data
    worth exporting (a secret alone is not: it is excluded).
    """

    categories: tuple[str, ...]
    exclude: bool
    reasons: tuple[str, ...]
    personal: bool


def sql_family(sql_type: str) -> str:
    """A database's type name -> text, number, date, bool, binary, inet, uuid, json or other
    (`VARCHAR(255)`, `character varying`, `TINYINT(1)`, `timestamp with time zone`...)."""
    name = sql_type.strip().lower()
    if name.startswith(("tinyint(1)", "bool", "bit(1)")) or name == "bit":
        return "bool"
    if name.startswith(("inet", "cidr", "macaddr")):
        return "inet"
    if "uuid" in name or "uniqueidentifier" in name:
        return "uuid"
    if "json" in name:
        return "json"
    if any(word in name for word in ("point", "geometry", "geography", "interval", "array")):
        return "other"
    if name.endswith("[]"):
        return "other"
    if any(word in name for word in ("date", "time", "year")):
        return "date" if "year" not in name else "number"
    if any(word in name for word in ("blob", "binary", "bytea", "raw", "image")):
        return "binary"
    if any(word in name for word in ("char", "text", "clob", "string", "enum", "set(", "name")):
        return "text"
    numeric = ("int", "numeric", "decimal", "float", "double", "real", "number", "serial")
    if any(word in name for word in (*numeric, "money")):
        return "number"
    return "other"


def classify_column(
    table: str,
    column: str,
    sql_type: str,
    samples: Sequence[object],
    *,
    today: date | None = None,
) -> ColumnClass:
    """Propose categories for `table`.`column` of type `sql_type` from its name and `samples`
    (at most about a thousand of its values; None and empty text are ignored). `today` anchors
    plausible birth dates (the current day unless a test gives one)."""
    family = sql_family(sql_type)
    non_null = [value for value in samples if value is not None and value != ""]
    values = non_null[:: math.ceil(len(non_null) / MAX_VALUES) or 1]
    hint = match_name(table, column)
    if hint is not None and family not in hint.rule.types:
        hint = None
    categories: list[str] = []
    reasons: list[str] = []
    name_confirmed = False
    if hint is not None:
        categories.append(hint.rule.category)
        name_confirmed = _confirm(hint, values, today or date.today(), reasons)
    if family not in _NO_VALUE_DETECTION and len(values) >= MIN_SAMPLES:
        for detector in ALONE:
            if detector.category in categories:
                continue
            found = measure(detector, values)
            if found.fraction >= VALUES_ALONE:
                categories.append(detector.category)
                reasons.append(found.reason())
    if (
        hint is not None
        and hint.rule.secret
        and not name_confirmed
        and any(category not in SECRET_CATEGORIES for category in categories)
    ):
        # `password_reset_email` holding e-mail addresses: the values overrule the name
        categories.remove(hint.rule.category)
        reasons[0] = f"{hint.reason}, but its values are not secrets"
    exclude = any(category in SECRET_CATEGORIES for category in categories)
    personal = any(category not in SECRET_CATEGORIES for category in categories)
    return ColumnClass(tuple(categories), exclude, tuple(reasons), personal)


def _confirm(hint: NameHint, values: list[object], today: date, reasons: list[str]) -> bool:
    """Add the name's reason and what the values say of it; whether they confirm it."""
    confirmers = _CONFIRMERS.get(hint.rule.category, ())
    if hint.rule.category == "user.demographic.date_of_birth":
        confirmers = (birth_date(today),)
    if not confirmers or not values:
        reasons.append(hint.reason)
        return False
    measures: list[Measure] = []
    for detector in confirmers:  # the strongest first: stop at the first that confirms
        found = measure(detector, values)
        if found.fraction >= CONFIRMS:
            reasons.append(f"{hint.reason}, and {found.reason()}")
            return True
        measures.append(found)
    best = max(measures, key=lambda found: found.fraction)
    reasons.append(f"{hint.reason} (only {best.reason()}: the name alone proposes it)")
    return False
