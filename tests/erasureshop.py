"""The erasure tests' shop (docs/erasure.md): a SQLite directory and source of two people, `ada`
(Ada Lovelace) and `bob` (Bob Kahn), with a table under each rule: `users` masked (name to a
value, email hashed), `orders` deleted, `invoices` retained for "tax law"; and the configuration
that serves it with `[erasure] approval` as a test asks."""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT, email VARCHAR(120));
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT REFERENCES users(id), total INTEGER);
CREATE TABLE invoices (id INTEGER PRIMARY KEY, customer TEXT, amount INTEGER);
INSERT INTO users VALUES ('ada', 'Ada Lovelace', 'ada@example.com'),
                         ('bob', 'Bob Kahn', 'bob@example.org');
INSERT INTO orders VALUES (1, 'ada', 10), (2, 'ada', 20), (3, 'bob', 30);
INSERT INTO invoices VALUES (1, 'ada', 30), (2, 'bob', 30);
"""


def erasure_config(root: Path, approval: str = "none") -> str:
    """The shop, made at `root/shop.sqlite3`, and its configuration (TOML)."""
    shop = root / "shop.sqlite3"
    with sqlite3.connect(shop) as connection:
        connection.executescript(SCHEMA)
    return f"""
[directory]
url = "sqlite:///{shop}"
table = "users"
display_name_column = "name"
mail_column = "email"

[[sources.sql]]
name = "shop"
url = "sqlite:///{shop}"

  [[sources.sql.tables]]
  table = "users"
  user_key = "id"
  erase = "mask"
  mask = {{ name = {{ value = "(erased)" }}, email = "hash" }}

  [[sources.sql.tables]]
  table = "orders"
  parent = "users"
  erase = "delete"

  [[sources.sql.tables]]
  table = "invoices"
  user_key = "customer"
  erase = "retain"
  reason = "tax law"

[erasure]
approval = "{approval}"
"""
