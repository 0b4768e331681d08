"""Erasure, proved on generated schemas: erasing one person changes exactly that person's rows,
as the rules say, on SQLite, PostgreSQL and MariaDB.

Hypothesis generates schemas, people and configurations as the selection test does
(tests/generated_schemas.py: composite, nullable and self-referencing keys, declared or not;
one table by several paths) and gives each table a rule: delete, mask (of the columns that are
no key: `null`, `hash`, a fixed value) or retain. For one person P, the whole database is dumped
before and after the erasure; then:

- every row the configuration does not reach from P (the reference, `reachable`, written apart
  from the engine) is byte-for-byte unchanged, in every table, configured or not;
- P's rows are gone from `delete` tables, masked (and otherwise unchanged) in `mask` tables and
  untouched in `retain` tables;
- an export of P afterwards holds nothing from `delete` tables and only masked values in `mask`
  tables;
- a dry run first changes nothing and counts what the erasure then does (the dry run reads
  each row by its key, the erasure deletes set-based where it can: two ways, one answer);
- the keys the erasure reports (the receipt's) are exactly those of the rows it deleted or
  changed, each once: as keys, or as the hashes the database computed (MariaDB: receipt.py
  `KeyHashes.in_sql`), each `key_hash`'s;
- erasing again changes nothing;
- or the erasure was refused (a row that is not P's refers to one of P's rows to delete, or a
  table no entry configures does), and then nothing at all changed.

`DATAPOLICY_ERASURE_EXAMPLES` raises the number of examples per database (20 by default).
"""

from __future__ import annotations

import os
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import MetaData, select
from sqlalchemy.engine import Engine

from datapolicy.config import MaskValue, SqlSourceConfig, TableConfig
from datapolicy.engine.erasure import ErasureFailed, Masker, erase_person
from datapolicy.engine.erasure.receipt import KeyHashes, key_hash
from datapolicy.engine.sources.base import RecordStream
from datapolicy.engine.sources.sql import SqlSource
from generated_schemas import PEOPLE, GeneratedSchema, Scenario, create, reachable, scenarios

EXAMPLES = int(os.environ.get("DATAPOLICY_ERASURE_EXAMPLES", "20"))
MASKER = Masker(b"the generated tests' secret")
RECEIPT_KEY = b"the generated tests' receipt key"
INTEGER_MASKS = st.sampled_from(("null", MaskValue(value=7)))
TEXT_MASKS = st.sampled_from(("null", "hash", MaskValue(value="(erased)")))


@st.composite
def erasures(draw: st.DrawFn) -> tuple[Scenario, dict[int, TableConfig], int]:
    """A scenario, a rule per configured table (by table index), and the person to erase."""
    scenario = draw(scenarios())
    rules: dict[int, TableConfig] = {}
    # A table that a table no entry configures refers to (a declared key) is never deleted
    # from: that is refused by the rules alone (tests/engine/test_erasure.py proves it).
    configured = {entry.table for entry in scenario.entries}
    unlisted = [spec for spec in scenario.tables if spec.index not in configured]
    kept = {link.target for spec in unlisted for link in spec.links if link.declared}
    for entry in scenario.entries:
        if entry.table in rules:
            continue
        spec = scenario.tables[entry.table]
        keys = set(spec.key)
        for other, config in zip(scenario.entries, scenario.configs, strict=True):
            if other.table == entry.table and config.user_key is not None:
                keys.add(config.user_key)
            if other.table == entry.table and other.link is not None:
                keys.update(spec.links[other.link].columns)
        for link in spec.links:
            if link.declared:
                keys.update(link.columns)
        maskable = [
            c for c in ("owner", *(c for link in spec.links for c in link.columns)) if c not in keys
        ]
        if spec.email:
            maskable.append("email")
        rule = draw(
            st.sampled_from(
                [
                    rule
                    for rule in ("delete", "mask", "retain")
                    if (rule != "mask" or maskable)
                    and (rule != "delete" or entry.table not in kept)
                ]
            )
        )
        if rule == "mask":
            columns = draw(st.lists(st.sampled_from(maskable), min_size=1, unique=True))
            mask = {c: draw(TEXT_MASKS if c == "email" else INTEGER_MASKS) for c in columns}
            rules[entry.table] = TableConfig(table="t", user_key="k", erase="mask", mask=mask)
        elif rule == "retain":
            rules[entry.table] = TableConfig(table="t", user_key="k", erase="retain", reason="law")
        else:
            rules[entry.table] = TableConfig(table="t", user_key="k", erase="delete")
    return scenario, rules, draw(st.sampled_from(PEOPLE))


def dump(engine: Engine, names: dict[int, str]) -> dict[int, dict[tuple[Any, ...], str]]:
    """Every row of every generated table, by key, as the bytes of its values' JSON."""
    metadata = MetaData()
    metadata.reflect(engine, only=list(names.values()))
    rows: dict[int, dict[tuple[Any, ...], str]] = {}
    with engine.connect() as connection:
        for index, name in names.items():
            table = metadata.tables[name]
            key = [c.name for c in table.primary_key.columns]
            rows[index] = {
                tuple(row[c] for c in key): orjson.dumps(
                    {str(k): v for k, v in row.items()}
                ).decode()
                for row in connection.execute(select(table)).mappings()
            }
    return rows


def exported(source: SqlSource, person: int) -> dict[str, list[dict[str, Any]]]:
    records: dict[str, list[dict[str, Any]]] = {}
    for part in source.parts(str(person)):
        assert isinstance(part, RecordStream)
        records[part.name] = [
            orjson.loads(line) for batch in part.batches for line in batch.data.splitlines()
        ]
    return records


def ignore(table: str, change: dict[str, Any]) -> None:
    """A dry run's detail, not looked at here (tests/engine/test_erasure.py does)."""


def check(
    url: str, engine: Engine, scenario: Scenario, rules: dict[int, TableConfig], person: int
) -> None:
    names = create(engine, GeneratedSchema(scenario.tables, scenario.rows))
    configs = tuple(
        config.model_copy(
            update={
                "table": names[entry.table],
                "erase": rules[entry.table].erase,
                "mask": rules[entry.table].mask,
                "reason": rules[entry.table].reason,
            }
        )
        for entry, config in zip(scenario.entries, scenario.configs, strict=True)
    )
    source = SqlSource(SqlSourceConfig(name="generated", url=url, tables=configs))
    theirs: dict[int, set[tuple[Any, ...]]] = {}
    for entry, rows in zip(scenario.entries, reachable(scenario, person).values(), strict=True):
        key = scenario.tables[entry.table].key
        theirs.setdefault(entry.table, set()).update(tuple(r[c] for c in key) for r in rows)
    before = dump(engine, names)
    hashes = KeyHashes(RECEIPT_KEY)
    try:
        try:
            # With `change`, the dry run reads every row by its key; the erasure then deletes
            # set-based where that is exact: their counts must agree.
            dry = erase_person(str(person), [source], MASKER, dry_run=True, change=ignore)
            assert dump(engine, names) == before  # a dry run changes nothing
            reported: list[tuple[str | None, tuple[Any, ...]]] = []
            done = erase_person(
                str(person),
                [source],
                MASKER,
                dry_run=False,
                keys=lambda _, table, batch: reported.extend((table, tuple(k)) for k in batch),
                hashed=hashes,
            )
            assert [t.as_json() for t in done.tables] == [t.as_json() for t in dry.tables]
        except ErasureFailed as refused:
            if "does not configure" not in str(refused) and "refer to them" not in str(refused):
                pytest.fail(f"refused for no reason the rules give: {refused}")
            event(
                "refused: "
                + (
                    "unlisted table"
                    if "does not configure" in str(refused)
                    else "a row not deleted refers"
                )
            )
            assert dump(engine, names) == before
            return
        after = dump(engine, names)
        listed = [key_hash(RECEIPT_KEY, "generated", table, *key) for table, key in reported]
        for table in set(names.values()):
            listed += orjson.loads(b"[" + b"".join(hashes.json_items("generated", table)) + b"]")
        assert len(listed) == len(set(listed))
        changed = {
            key_hash(RECEIPT_KEY, "generated", names[index], *key)
            for index, rows in before.items()
            for key, row in rows.items()
            if after[index].get(key) != row
        }
        assert set(listed) == changed
        for index, rows in before.items():
            mine = theirs.get(index, set())
            rule = rules.get(index)
            for key, row in rows.items():
                if key not in mine or rule is None or rule.erase == "retain":
                    assert after[index].get(key) == row, (index, key)
                elif rule.erase == "delete":
                    assert key not in after[index], (index, key)
                else:
                    expected = orjson.loads(row)
                    for column, strategy in rule.mask.items():
                        expected[column] = MASKER.mask(strategy, expected[column])
                    assert orjson.loads(after[index][key]) == expected, (index, key)
            assert set(after[index]) <= set(rows)
        event("erased: " + ",".join(sorted({rules[e.table].erase or "" for e in scenario.entries})))
        for entry, records in exported(source, person).items():
            index = next(e.table for e in scenario.entries if e.name == entry)
            rule = rules[index]
            if rule.erase == "delete":
                assert records == [], entry
            elif rule.erase == "mask":
                for record in records:
                    for column, strategy in rule.mask.items():
                        assert MASKER.mask(strategy, record[column]) == record[column]
        again = erase_person(str(person), [source], MASKER, dry_run=False)
        assert dump(engine, names) == after
        assert all(t.cells == 0 and (t.rule == "retain" or t.rows == 0) for t in again.tables)
    finally:
        hashes.close()
        source.close()


@settings(
    max_examples=EXAMPLES,
    phases=(Phase.explicit, Phase.generate),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(erasure=erasures())
def test_erasing_a_person_changes_exactly_their_rows_as_the_rules_say(namespace, erasure):
    check(*namespace, *erasure)
