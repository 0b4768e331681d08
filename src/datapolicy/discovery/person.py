"""Which table holds the people: the one a data subject's id is the key of.

A candidate has a one-column primary key (a person's id is one value). It is ranked by whether
it has an e-mail column (as classified), then by how many other tables refer to it by a foreign
key, then by a name people tables usually have. The choice comes with the candidates seen and
why, and is flagged as unsure when the runner-up is close: the operator then names the table
(`--person-table`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from datapolicy.discovery.schema import Schema, TableInfo

_PEOPLE_NAMES = re.compile(
    r"^(users?|customers?|people|persons?|accounts?|members?|clients?|patients?|"
    r"students?|employees?|subscribers?|contacts?|profiles?)$",
    re.IGNORECASE,
)
EMAIL = "user.contact.email"
SHOWN_CANDIDATES = 5


class PersonTableError(Exception):
    """No table can be the person table, or the one named cannot."""


@dataclass(frozen=True, slots=True)
class Candidate:
    table: str
    id_column: str
    email_column: str | None
    referring_tables: int
    people_name: bool

    @property
    def rank(self) -> tuple[bool, int, bool]:
        return (self.email_column is not None, self.referring_tables, self.people_name)

    @property
    def plausible(self) -> bool:
        """Worth naming among the candidates: it has an e-mail column or is referred to."""
        return self.email_column is not None or self.referring_tables > 0

    def why(self) -> str:
        parts = [
            f"e-mail column '{self.email_column}'" if self.email_column else "no e-mail column"
        ]
        parts.append(f"referred to by {self.referring_tables} table(s)")
        if self.people_name:
            parts.append("a people table's name")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class PersonChoice:
    chosen: Candidate
    candidates: tuple[Candidate, ...]  # the best few, the chosen one first
    unsure: bool
    given: bool  # named by the operator

    def explain(self) -> list[str]:
        """Lines for the command's output and the file's comments."""
        how = "given with --person-table" if self.given else "chosen"
        lines = [f"person table: {self.chosen.table} ({how}; {self.chosen.why()})"]
        for other in self.candidates[1:]:
            lines.append(f"  also seen: {other.table} ({other.why()})")
        if self.unsure:
            lines.append(
                "  unsure: another table ranks close to it; name the person table with "
                "--person-table if this one is wrong"
            )
        return lines


def candidate(schema: Schema, table: TableInfo) -> Candidate | None:
    if len(table.primary_key) != 1:
        return None
    email = next(
        (c.name for c in table.columns if EMAIL in c.classified.categories),
        None,
    )
    referring = {
        key.table for key in schema.referring.get(table.name, []) if key.table != table.name
    }
    return Candidate(
        table.name,
        table.primary_key[0],
        email,
        len(referring),
        bool(_PEOPLE_NAMES.match(table.name)),
    )


def choose_person_table(schema: Schema, given: str | None = None) -> PersonChoice:
    """The person table: `given`, checked, or the best-ranked candidate."""
    if not schema.tables:
        raise PersonTableError(f"no tables found in {schema.where}")
    found = [c for t in schema.tables.values() if (c := candidate(schema, t)) is not None]
    ranked = sorted(found, key=lambda c: (c.rank, c.table), reverse=True)
    if given is not None:
        table = schema.tables.get(given)
        if table is None:
            raise PersonTableError(f"there is no table '{given}'")
        chosen = candidate(schema, table)
        if chosen is None:
            raise PersonTableError(
                f"table '{given}' has no one-column primary key: a person's id must be one value"
            )
        others = [c for c in ranked if c.table != given and c.plausible][: SHOWN_CANDIDATES - 1]
        return PersonChoice(chosen, (chosen, *others), unsure=False, given=True)
    if not ranked:
        raise PersonTableError(
            "no table has a one-column primary key; name the person table with --person-table"
        )
    chosen, *rest = ranked
    rest = [c for c in rest if c.plausible]
    runner_up = rest[0] if rest else None
    unsure = chosen.email_column is None or (
        runner_up is not None
        and runner_up.email_column is not None
        and runner_up.referring_tables * 2 >= chosen.referring_tables
    )
    shown = (chosen, *rest[: SHOWN_CANDIDATES - 1])
    return PersonChoice(chosen, shown, unsure=unsure, given=False)
