"""The `[directory]` discover writes: which column names the person, and the comment saying
which and why."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from datapolicy.config import parse_config
from datapolicy.discovery.discover import discover

ORDERS = "CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users (id));"


def _written(tmp_path: Path, people: str) -> str:
    path = tmp_path / "people.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.executescript(f"CREATE TABLE users ({people}); {ORDERS}")
    found = discover(f"sqlite:///{path}", sample_rows=0)
    parse_config(found.configuration, tmp_path / "datapolicy.toml")
    return found.configuration


def test_a_whole_name_is_the_display_name(tmp_path: Path):
    """A full name wins over a first, a last and a middle name, whatever their order."""
    written = _written(
        tmp_path,
        "id INTEGER PRIMARY KEY, email TEXT, middle_name TEXT, last_name TEXT, first_name TEXT, "
        "full_name TEXT",
    )
    assert 'display_name_column = "full_name"' in written
    assert "# display_name_column: 'full_name', a whole name" in written


def test_without_a_whole_name_the_first_name_is_taken_and_the_comment_says_why(tmp_path: Path):
    """A last name before the first in column order, and a middle name (a part, though its
    category is a person's name): the first name is taken, and the file says that no column
    holds the whole name and how to show them together."""
    written = _written(
        tmp_path,
        "id INTEGER PRIMARY KEY, email TEXT, surname TEXT, middle_name TEXT, given_name TEXT",
    )
    assert 'display_name_column = "given_name"' in written
    comment = " ".join(
        line.removeprefix("# ") for line in written.splitlines() if line.startswith("# ")
    )
    assert "display_name_column: 'given_name', a first name: no column holds a whole name" in (
        comment
    )
    assert "give the directory a `query` that joins them" in comment
