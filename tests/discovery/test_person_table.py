"""Which table is the person table: the ranking, and saying so when it is a close call."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from datapolicy.discovery.person import PersonTableError, choose_person_table
from datapolicy.discovery.schema import open_engine, read_schema


def schema_of(tmp_path: Path, script: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "db.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.executescript(script)
    engine = open_engine(f"sqlite:///{path}")
    try:
        return read_schema(engine)
    finally:
        engine.dispose()


TWO_KINDS_OF_PEOPLE = """
CREATE TABLE members (id INTEGER PRIMARY KEY, email TEXT);
CREATE TABLE agents (id INTEGER PRIMARY KEY, email TEXT);
CREATE TABLE visits (id INTEGER PRIMARY KEY, member_id INTEGER REFERENCES members (id));
CREATE TABLE notes (id INTEGER PRIMARY KEY, member_id INTEGER REFERENCES members (id));
CREATE TABLE calls (id INTEGER PRIMARY KEY, agent_id INTEGER REFERENCES agents (id));
CREATE TABLE lines (a INTEGER, b INTEGER, email TEXT, PRIMARY KEY (a, b));
"""


def test_the_most_referred_table_with_an_e_mail_wins_and_a_close_call_says_so(tmp_path: Path):
    """members (2 tables refer to it) beats agents (1): chosen, but flagged unsure, since agents
    has half its references; the explanation names both and how to choose. A table with a
    composite key is no candidate."""
    choice = choose_person_table(schema_of(tmp_path, TWO_KINDS_OF_PEOPLE))
    assert choice.chosen.table == "members"
    assert [c.table for c in choice.candidates] == ["members", "agents"]
    assert choice.unsure
    lines = choice.explain()
    assert lines[0] == (
        "person table: members (chosen; e-mail column 'email', referred to by 2 table(s), "
        "a people table's name)"
    )
    assert "also seen: agents (e-mail column 'email', referred to by 1 table(s))" in lines[1]
    assert "--person-table" in lines[-1]


def test_a_given_person_table_is_taken_or_refused_with_the_reason(tmp_path: Path):
    schema = schema_of(tmp_path, TWO_KINDS_OF_PEOPLE)
    given = choose_person_table(schema, "agents")
    assert (given.chosen.table, given.given, given.unsure) == ("agents", True, False)
    assert given.explain()[0].startswith("person table: agents (given with --person-table;")
    with pytest.raises(PersonTableError, match="one-column primary key"):
        choose_person_table(schema, "lines")
    with pytest.raises(PersonTableError, match="there is no table 'nobody'"):
        choose_person_table(schema, "nobody")
