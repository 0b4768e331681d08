"""Coverage: tables that look personal (a column the classifier gives a data category) and that
no configured path reaches. A table forgotten in the map is missing from every package without
a word; this names it, with the columns and why they look personal, for `discover` (in its
output and the file it writes) and `config check` (for an existing configuration).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from datapolicy.discovery.schema import ForeignKey, Schema


@dataclass(frozen=True, slots=True)
class PersonalColumn:
    name: str
    categories: tuple[str, ...]
    reasons: tuple[str, ...]

    def describe(self) -> str:
        why = "; ".join(self.reasons) or "classified"
        return f"{self.name} ({', '.join(self.categories)}: {why})"


@dataclass(frozen=True, slots=True)
class Gap:
    """A personal-looking table no path reaches, and, where the person's rows point to it, the
    links by which they do. Those links are not a way to add it: a link can point at another
    person's row (a gift's recipient's address), so following it backwards would export that."""

    table: str
    columns: tuple[PersonalColumn, ...]
    pointed_to_by: tuple[ForeignKey, ...] = ()

    def describe(self) -> str:
        columns = ", ".join(column.describe() for column in self.columns)
        return f"{self.table}: {columns}"

    def hint(self) -> str:
        if self.pointed_to_by:
            links = ", ".join(key.describe() for key in self.pointed_to_by)
            return (
                f"the person's rows point to it ({links}), but a row pointed to can be another "
                "person's (a gift's recipient): do not follow the link backwards; add a "
                "[[sources.sql.queries]] entry whose condition proves a row is the person's, or "
                "list it in ignore_tables (docs/map-your-data.md, section 2)"
            )
        return (
            "no foreign key links it to the person's tables: add a [[sources.sql.queries]] "
            "entry (or a foreign key), or list it in ignore_tables if it holds no data subject's "
            "data"
        )


def find_gaps(
    schema: Schema,
    covered: Iterable[str],
    pointers: dict[str, list[ForeignKey]] | None = None,
) -> list[Gap]:
    """Personal-looking tables of `schema` not in `covered`, by name."""
    done = set(covered)
    gaps = []
    for name in sorted(schema.tables):
        table = schema.tables[name]
        personal = table.personal_columns
        if name in done or not personal:
            continue
        columns = tuple(
            PersonalColumn(c.name, c.classified.categories, c.classified.reasons) for c in personal
        )
        gaps.append(Gap(name, columns, tuple((pointers or {}).get(name, ()))))
    return gaps


def tables_named_in(sql: str, tables: Iterable[str]) -> set[str]:
    """The tables a query names (as whole words, any case): a query reaching a table covers it.
    A table merely mentioned in a comment counts as well: the check errs towards silence."""
    return {t for t in tables if re.search(rf"(?<![\w.]){re.escape(t)}(?!\w)", sql, re.IGNORECASE)}
