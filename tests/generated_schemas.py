"""Generated schemas with data, for the tests that prove row selection against a reference:
tests/engine/test_sql_source_selection.py (a configuration's rows),
tests/engine/test_erasure_generated.py (erasing exactly those rows) and
tests/discovery/test_discover_generated.py (the rows of the configuration `discover` writes).

Hypothesis draws tables with single or composite keys; links to earlier tables and to
themselves, with or without a FOREIGN KEY constraint, nullable or not; optionally an e-mail
column; and the rows of three people interleaved in them (composite keys whose halves belong to
different people, NULLs in any part of a link). `create` makes them in a database.

Test modules import this module by name (`from generated_schemas import ...`), as
tests/conftest.py puts the tests directory on `sys.path`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from sqlalchemy import Column, ForeignKeyConstraint, Integer, MetaData, String, Table
from sqlalchemy.engine import Engine

from datapolicy.config import TableConfig

PEOPLE = (1, 2, 3)
OWNERS = (*PEOPLE, None)
KEY_VALUES = st.integers(0, 3)  # few values, so keys and links collide across people
# Biased coins (Hypothesis's integers favour their bounds): True three times in four.
MOSTLY = st.sampled_from((True, True, True, False))
MOSTLY_NOT = st.sampled_from((False, False, False, True))
SIZES = st.integers(3, 4)  # tables per schema
EMAILS = st.sampled_from(("ada@example.com", "bob@example.org", "cy@example.net"))


@dataclass(frozen=True)
class Link:
    """Columns of a table that refer to the key of `target` (an earlier table, or itself)."""

    columns: tuple[str, ...]
    target: int
    declared: bool  # a FOREIGN KEY constraint in the database
    nullable: bool


@dataclass(frozen=True)
class TableSpec:
    index: int
    composite: bool
    links: tuple[Link, ...]
    email: bool = False  # an `email` column of e-mail addresses

    @property
    def key(self) -> tuple[str, ...]:
        return ("k1", "k2") if self.composite else ("k1",)


@dataclass(frozen=True)
class GeneratedSchema:
    tables: tuple[TableSpec, ...]
    rows: tuple[tuple[dict[str, Any], ...], ...]  # by table index


@st.composite
def schemas(
    draw: st.DrawFn,
    sizes: st.SearchStrategy[int] = SIZES,
    *,
    simple_first: bool = False,
    emails: bool = False,
) -> GeneratedSchema:
    """Tables t0, t1, ... and their rows. `simple_first`: t0 has a one-column key (it can be a
    person table); `emails`: tables may have an e-mail column (t0 always has one then)."""
    tables: list[TableSpec] = []
    rows: list[tuple[dict[str, Any], ...]] = []
    for index in range(draw(sizes)):
        composite = draw(st.booleans()) and not (simple_first and index == 0)
        links = []
        for number in range(draw(st.integers(1, 2))):
            refers_to_itself = index == 0 or draw(MOSTLY_NOT)
            target = index if refers_to_itself else draw(st.integers(0, index - 1))
            key = tables[target].key if target < index else ("k1", "k2")[: 1 + composite]
            links.append(
                Link(
                    columns=tuple(f"l{number}_{column}" for column in key),
                    target=target,
                    declared=draw(MOSTLY),
                    # The first row of a table that refers to itself can refer to nothing.
                    nullable=target == index or draw(st.booleans()),
                )
            )
        email = emails and (index == 0 or draw(st.booleans()))
        tables.append(TableSpec(index, composite, tuple(links), email))
        rows.append(_rows(draw, tables[-1], rows))
    return GeneratedSchema(tuple(tables), tuple(rows))


def _rows(
    draw: st.DrawFn, spec: TableSpec, earlier: list[tuple[dict[str, Any], ...]]
) -> tuple[dict[str, Any], ...]:
    """The table's rows: keys, an owner (or none), and a value for each link: any key values
    where no constraint holds them, else an existing key of the target (an earlier row, for a
    self-reference); NULL, or NULL in one part of a composite link, where the column allows."""
    keys = draw(st.lists(st.tuples(*[KEY_VALUES] * len(spec.key)), max_size=6, unique=True))
    rows: list[dict[str, Any]] = []
    for key in keys:
        row: dict[str, Any] = dict(zip(spec.key, key, strict=True))
        row["owner"] = draw(st.sampled_from(OWNERS))
        if spec.email:
            row["email"] = draw(EMAILS)
        for link in spec.links:
            width = len(link.columns)
            if not link.declared:
                part = st.one_of(st.none(), KEY_VALUES) if link.nullable else KEY_VALUES
                values = draw(st.tuples(*[part] * width))
            else:
                target = rows if link.target == spec.index else earlier[link.target]
                choices = [tuple(r[c] for c in ("k1", "k2")[:width]) for r in target]
                if link.nullable:
                    choices += [(None,) * width] + [(None, *c[1:]) for c in choices if width > 1]
                if not choices:
                    break  # NOT NULL, and nothing to refer to: there can be no such row
                values = draw(st.sampled_from(choices))
            row.update(zip(link.columns, values, strict=True))
        else:
            rows.append(row)
    return tuple(rows)


_created = itertools.count()


def create(engine: Engine, schema: GeneratedSchema) -> dict[int, str]:
    """The schema's tables, under names no earlier example used, filled; their names."""
    prefix = f"x{next(_created)}_"
    names = {spec.index: f"{prefix}t{spec.index}" for spec in schema.tables}
    metadata = MetaData()
    for spec in schema.tables:
        columns = [Column(c, Integer, primary_key=True, autoincrement=False) for c in spec.key]
        columns.append(Column("owner", Integer))
        if spec.email:
            columns.append(Column("email", String(120)))
        for link in spec.links:
            columns += [Column(c, Integer, nullable=link.nullable) for c in link.columns]
        constraints = [
            ForeignKeyConstraint(
                list(link.columns),
                [f"{names[link.target]}.{c}" for c in schema.tables[link.target].key],
            )
            for link in spec.links
            if link.declared
        ]
        Table(names[spec.index], metadata, *columns, *constraints)
    metadata.create_all(engine)
    with engine.begin() as connection:
        for spec in schema.tables:
            table = metadata.tables[names[spec.index]]
            for row in schema.rows[spec.index]:  # in order: a self-reference looks back
                connection.execute(table.insert(), row)
    return names


# --- configurations over them, and the reference selection ------------------------------------
# (the rules the reference pins are in tests/engine/test_sql_source_selection.py's docstring)


@dataclass(frozen=True)
class Entry:
    """One configured table: a physical table, reached from the person or through a link."""

    name: str
    table: int
    parent: int | None  # the entry it hangs from
    link: int | None  # which of the table's links


@dataclass(frozen=True)
class Scenario:
    tables: tuple[TableSpec, ...]
    rows: tuple[tuple[dict[str, Any], ...], ...]  # by table index
    entries: tuple[Entry, ...]
    configs: tuple[TableConfig, ...]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    schema = draw(schemas())
    tables, rows = list(schema.tables), schema.rows
    entries: list[Entry] = []
    configs: list[TableConfig] = []
    for number in range(draw(st.integers(3, 6))):
        ways = [  # the latest entries first: the simplest examples have several hops
            (index, parent, link)
            for index, spec in enumerate(tables)
            for parent, entry in reversed(list(enumerate(entries)))
            for link, candidate in enumerate(spec.links)
            if candidate.target == entry.table
        ]
        name = f"e{number}"
        if ways and draw(MOSTLY):  # mostly through a link, where there is one
            across = [way for way in ways if tables[way[0]].links[way[2]].target != way[0]]
            # Self-references are the easy way to find: take links between tables mostly.
            index, parent, link = draw(st.sampled_from(across if across and draw(MOSTLY) else ways))
            entries.append(Entry(name, index, parent, link))
            configs.append(_child_config(draw, entries[-1], tables[index], tables, entries[parent]))
        else:
            # Mostly the first table: every other table can link to it.
            index = draw(st.integers(0, len(tables) - 1)) if draw(MOSTLY_NOT) else 0
            entries.append(Entry(name, index, None, None))
            configs.append(TableConfig(table=f"t{index}", name=name, user_key="owner"))
    return Scenario(tuple(tables), tuple(rows), tuple(entries), tuple(configs))


def _child_config(
    draw: st.DrawFn, entry: Entry, spec: TableSpec, tables: list[TableSpec], parent: Entry
) -> TableConfig:
    """The configuration of a table reached through a link: reflected where the database has
    exactly one foreign key from the table to the parent's (and it is not the table itself),
    else the columns named, as a string or a list, with or without the parent's key."""
    assert entry.link is not None
    link = spec.links[entry.link]
    declared = [other for other in spec.links if other.declared and other.target == link.target]
    base = {"table": f"t{spec.index}", "name": entry.name, "parent": parent.name}
    if declared == [link] and link.target != spec.index and draw(MOSTLY):
        return TableConfig(**base)
    columns: Any = list(link.columns)
    if len(columns) == 1 and draw(st.booleans()):
        columns = columns[0]
    if draw(st.booleans()):
        return TableConfig(**base, foreign_key=columns)  # the parent's primary key
    return TableConfig(**base, foreign_key=columns, parent_key=list(tables[link.target].key))


# --- the reference -----------------------------------------------------------------------------


def reachable(scenario: Scenario, person: int) -> dict[str, list[dict[str, Any]]]:
    """Each entry's rows for `person`, by the rules in this module's docstring, computed over
    the generated rows without SQL."""
    kept: list[list[dict[str, Any]]] = []
    for entry in scenario.entries:
        rows = scenario.rows[entry.table]
        if entry.parent is None:
            kept.append([row for row in rows if row["owner"] == person])
            continue
        assert entry.link is not None
        link = scenario.tables[entry.table].links[entry.link]
        target = scenario.tables[link.target]
        keys = {tuple(row[c] for c in target.key) for row in kept[entry.parent]}
        kept.append(
            [
                row
                for row in rows
                if None not in (values := tuple(row[c] for c in link.columns)) and values in keys
            ]
        )
    return {entry.name: rows for entry, rows in zip(scenario.entries, kept, strict=True)}


def as_set(rows: list[dict[str, Any]]) -> list[tuple[tuple[str, Any], ...]]:
    """Rows as a sorted list of their items: equal lists, the same rows however read."""
    return sorted(tuple(sorted(row.items())) for row in rows)
