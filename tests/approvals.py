"""A service whose configuration has `[erasure] approval` set as a test asks (docs/erasure.md,
"Approval"): a SQLite directory of two people, `ada` and `bob`, whose one table is deleted by
an erasure. For the API and CLI tests of `approval`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conftest import AppService, configured_app


def config(root: Path, approval: str) -> str:
    shop = root / "shop.sqlite3"
    with sqlite3.connect(shop) as connection:
        connection.executescript(
            "CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT);"
            "INSERT INTO users VALUES ('ada', 'Ada'), ('bob', 'Bob');"
        )
    return f"""
[directory]
url = "sqlite:///{shop}"
table = "users"

[[sources.sql]]
name = "shop"
url = "sqlite:///{shop}"

  [[sources.sql.tables]]
  table = "users"
  user_key = "id"
  erase = "delete"

[erasure]
approval = "{approval}"
"""


def serve(root: Path, approval: str, *args: str) -> AppService:
    root.mkdir(parents=True, exist_ok=True)
    return configured_app(root, config(root, approval), "--workers", "0", *args)
