"""`discover` on schemas nobody wrote for it: the configuration it writes exports exactly the rows a
reference traversal selects, on SQLite, PostgreSQL and MariaDB.

The schemas are tests/generated_schemas.py's (the generator of the row-selection proof): several
hops, single and composite keys, nullable links, self-references, links with and without a
FOREIGN KEY constraint, some tables with an e-mail column; t0, with a one-column key, is the
person table. `reference` is written apart from discovery/paths.py, over the generated specs
and rows, by the rules of docs/map-your-data.md ("What discover follows"):

- the person's row of t0 (its key is the person's id);
- a table with a declared foreign key to t0 holds the rows whose first such key (in column
  order) is the person's id, and is reached by nothing else; its other keys to t0 are other
  people's;
- any other table holds the rows whose declared link, to a table reached, refers to one of the
  rows held there (all its columns; a NULL links to nothing), whichever link; never through a
  self-reference, never through a link that is not declared (the database does not know it);
- a table reached by no link is not exported, and if it has an e-mail column it is a gap.

The configuration is parsed as `config check` parses it, and read by the real `SqlSource` for
each person (and for an id nobody has); the directory it names knows exactly the people of t0.
`DATAPOLICY_DISCOVER_EXAMPLES` raises the number of examples per database: 15 by default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine

from databases import KINDS, scratch_database
from datapolicy.config import parse_config
from datapolicy.discovery.discover import discover
from datapolicy.engine.directory import UserDirectory
from datapolicy.engine.sources.base import RecordStream
from datapolicy.engine.sources.sql import SqlSource
from generated_schemas import PEOPLE, GeneratedSchema, Link, TableSpec, create, schemas

EXAMPLES = int(os.environ.get("DATAPOLICY_DISCOVER_EXAMPLES", "15"))
SIZES = st.integers(3, 5)  # at most 8 paths to a table: under discover's cap


def owner_link(spec: TableSpec) -> Link | None:
    """The declared key to the person table by which a table holds its people's rows."""
    return next((link for link in spec.links if link.declared and link.target == 0), None)


def reached_tables(schema: GeneratedSchema) -> set[int]:
    reached = {0}
    for spec in schema.tables[1:]:  # links only look back: one pass in order is the closure
        if owner_link(spec) is not None or any(
            link.declared and link.target != spec.index and link.target in reached
            for link in spec.links
        ):
            reached.add(spec.index)
    return reached


def reference(schema: GeneratedSchema, person: int) -> dict[int, list[dict[str, Any]]]:
    """The person's rows of each reached table (the rules in the module's docstring)."""
    reached = reached_tables(schema)
    kept: dict[int, list[dict[str, Any]]] = {0: [r for r in schema.rows[0] if r["k1"] == person]}
    for spec in schema.tables[1:]:
        if spec.index not in reached:
            continue
        rows = schema.rows[spec.index]
        owner = owner_link(spec)
        if owner is not None:
            kept[spec.index] = [r for r in rows if r[owner.columns[0]] == person]
            continue
        found = []
        for row in rows:
            for link in spec.links:
                if not link.declared or link.target == spec.index or link.target not in kept:
                    continue
                target = schema.tables[link.target]
                keys = {tuple(r[c] for c in target.key) for r in kept[link.target]}
                values = tuple(row[c] for c in link.columns)
                if None not in values and values in keys:
                    found.append(row)
                    break
        kept[spec.index] = found
    return kept


def distinct(rows: list[dict[str, Any]]) -> list[tuple[tuple[str, Any], ...]]:
    return sorted({tuple(sorted(row.items())) for row in rows})


def features(schema: GeneratedSchema) -> set[str]:
    reached = reached_tables(schema)
    found = set()
    for spec in schema.tables:
        links = [link for link in spec.links if link.declared]
        if any(link.target == spec.index for link in links):
            found.add("self-reference")
        if sum(link.target == 0 for link in links) > 1 and spec.index:
            found.add("second key to the person")
        if spec.index in reached and owner_link(spec) is None and spec.index:
            found.add("reached through a table")
            if any(len(link.columns) > 1 and link.target in reached for link in links):
                found.add("composite link followed")
        if spec.index not in reached:
            found.add("unreached table with e-mail" if spec.email else "unreached table")
        if any(link.nullable for link in links):
            found.add("nullable link")
    return found


def check(kind: str, directory: Path, schema: GeneratedSchema) -> None:
    with scratch_database(kind, directory) as url:
        engine = create_engine(url)
        try:
            names = create(engine, schema)
        finally:
            engine.dispose()
        index = {name: number for number, name in names.items()}
        output = directory / "discovered.toml"
        found = discover(url, names[0], output=output)
        assert {index[table] for table in found.data.tables} == reached_tables(schema)
        unreached = {spec.index for spec in schema.tables} - reached_tables(schema)
        gaps = {index[gap.table] for gap in found.gaps}
        assert gaps <= unreached
        assert {i for i in unreached if schema.tables[i].email} <= gaps
        config = parse_config(found.configuration, output)
        assert config.directory is not None
        source = SqlSource(config.sources.sql[0])
        people = UserDirectory(config.directory)
        try:
            for person in (0, *PEOPLE, 99):
                expected = reference(schema, person)
                got: dict[int, list[dict[str, Any]]] = {}
                for part in source.parts(str(person)):
                    assert isinstance(part, RecordStream)
                    table = next(
                        t.table for t in config.sources.sql[0].tables if t.output_name == part.name
                    )
                    rows = [
                        orjson.loads(line) for b in part.batches for line in b.data.splitlines()
                    ]
                    got.setdefault(index[table], []).extend(rows)
                assert set(got) == set(expected)
                for number, rows in expected.items():
                    assert distinct(got[number]) == distinct(rows), (person, number)
                assert (people.get(str(person)) is not None) == bool(expected[0])
        finally:
            source.close()
            people.close()


def _link(columns: str, target: int) -> Link:
    return Link(tuple(columns.split()), target, declared=True, nullable=True)


# Kept cases. A table with its own key to the person (t2: a person's order, shipped to an
# address t1) also links to another of the person's tables: reached through it, person 1 would
# get person 2's row 20, which points to person 1's address 10.
OWNED_BELOW_ANOTHER = GeneratedSchema(
    tables=(
        TableSpec(0, False, (_link("l0_k1", 0),), email=True),
        TableSpec(1, False, (_link("l0_k1", 0),)),
        TableSpec(2, False, (_link("l0_k1", 0), _link("l1_k1", 1))),
    ),
    rows=(
        (
            {"k1": 1, "owner": None, "email": "ada@example.com", "l0_k1": None},
            {"k1": 2, "owner": None, "email": "bob@example.org", "l0_k1": 1},
        ),
        ({"k1": 10, "owner": None, "l0_k1": 1},),
        ({"k1": 20, "owner": None, "l0_k1": 2, "l1_k1": 10},),
    ),
)
# A table below a table below the person by a composite key (a NULL in half of it links to
# nothing), and an e-mail table whose only key refers to itself: a gap, not a path.
COMPOSITE_TWO_HOPS = GeneratedSchema(
    tables=(
        TableSpec(0, False, (_link("l0_k1", 0),), email=True),
        TableSpec(1, True, (_link("l0_k1", 0),)),
        TableSpec(2, False, (_link("l0_k1 l0_k2", 1),)),
        TableSpec(3, False, (Link(("l0_k1",), 3, True, True),), email=True),
    ),
    rows=(
        ({"k1": 1, "owner": None, "email": "ada@example.com", "l0_k1": None},),
        (
            {"k1": 1, "k2": 2, "owner": None, "l0_k1": 1},
            {"k1": 2, "k2": 1, "owner": None, "l0_k1": None},
        ),
        (
            {"k1": 1, "owner": None, "l0_k1": 1, "l0_k2": 2},
            {"k1": 2, "owner": None, "l0_k1": 2, "l0_k2": 1},
            {"k1": 3, "owner": None, "l0_k1": 1, "l0_k2": None},
        ),
        ({"k1": 1, "owner": 1, "email": "ada@example.com", "l0_k1": None},),
    ),
)


@pytest.fixture(params=KINDS, scope="module")
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@settings(
    max_examples=EXAMPLES,
    phases=(Phase.explicit, Phase.generate),  # shrinking on real databases outlasts the timeout
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(schema=schemas(SIZES, simple_first=True, emails=True))
@example(schema=OWNED_BELOW_ANOTHER)
@example(schema=COMPOSITE_TWO_HOPS)
def test_discover_configures_exactly_the_rows_the_reference_reaches(
    kind: str, tmp_path_factory: pytest.TempPathFactory, schema: GeneratedSchema
) -> None:
    """For every generated schema: the tables discover configures are the reachable ones; the
    export of its configuration, per table and over all its paths, holds exactly the
    reference's rows for each person; unreached tables with e-mail columns are gaps."""
    for feature in features(schema):
        event(feature)
    check(kind, tmp_path_factory.mktemp("discover"), schema)
