"""`discover` on a large PostgreSQL schema: 500 tables of 1,000 rows each, sampled whole.

Makes a scratch schema (dropped afterwards) on the PostgreSQL server of the tests (or
`--url`): a `users` table, then tables hanging from the users or from an earlier table (one in
five by a composite key of two columns, some with a second key to the users, some with a key
to themselves), tables with e-mail columns that nothing links to, and lookup tables. Then it
times `discover` (reflection, a 1,000-row sample of every table, classification, paths, gaps,
the configuration written and parsed back) in this process, and prints the figure as JSON.
The target: under 30 s (docs/benchmarks.md).

    python bench/discover.py                      # 500 tables, 1,000 rows each
    python bench/discover.py --tables 100 --rows 100
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from datapolicy.discovery.discover import discover

SERVER = os.environ.get(
    "DATAPOLICY_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TARGET_SECONDS = 30.0


def schema_sql(tables: int, rows: int, seed: int) -> list[str]:
    """CREATE TABLE and INSERT ... SELECT generate_series statements for the schema."""
    chance = random.Random(seed)
    statements = [
        "CREATE TABLE users (id integer PRIMARY KEY, email text NOT NULL, name text NOT NULL, "
        "password_hash text NOT NULL)",
        f"INSERT INTO users SELECT g, 'user' || g || '@example.com', 'Person ' || g, 'x' "
        f"FROM generate_series(1, {rows}) g",
    ]
    composite: set[int] = set()
    for number in range(1, tables):
        name = f"t{number}"
        kind = chance.random()
        if kind < 0.05:  # a lookup table
            statements += [
                f"CREATE TABLE {name} (id integer PRIMARY KEY, label text NOT NULL)",
                f"INSERT INTO {name} SELECT g, 'label ' || g FROM generate_series(1, {rows}) g",
            ]
            continue
        if kind < 0.10:  # personal, and nothing links to it
            statements += [
                f"CREATE TABLE {name} (id integer PRIMARY KEY, contact_email text NOT NULL)",
                f"INSERT INTO {name} SELECT g, 'c' || g || '@example.org' "
                f"FROM generate_series(1, {rows}) g",
            ]
            continue
        parent = 0 if number < 10 or chance.random() < 0.2 else chance.randrange(1, number)
        columns = ["id integer NOT NULL", "amount integer", "note text"]
        values = ["g", "g % 97", "'note ' || g"]
        keys = []
        if parent == 0:
            columns.append("user_id integer REFERENCES users (id)")
            values.append(f"1 + g % {rows}")
        elif parent in composite:
            columns += ["p_a integer", "p_b integer"]
            values += [f"1 + g % {rows}", f"1 + g % {rows}"]
            keys.append(f"FOREIGN KEY (p_a, p_b) REFERENCES t{parent} (id, id2)")
        else:
            columns.append(f"p_id integer REFERENCES t{parent} (id)")
            values.append(f"1 + g % {rows}")
        if chance.random() < 0.2:
            columns.append("id2 integer NOT NULL")
            values.append("g")
            primary = "PRIMARY KEY (id, id2)"
            composite.add(number)
        else:
            primary = "PRIMARY KEY (id)"
        if chance.random() < 0.1:
            columns.append(
                f"reply_to integer REFERENCES {name} (id)"
                if number not in composite
                else "reply_to integer"
            )
            values.append("NULL")
        if chance.random() < 0.1:
            columns.append("recipient_id integer REFERENCES users (id)")
            values.append(f"1 + (g * 7) % {rows}")
        statements += [
            f"CREATE TABLE {name} ({', '.join([*columns, primary, *keys])})",
            f"INSERT INTO {name} SELECT {', '.join(values)} FROM generate_series(1, {rows}) g",
        ]
    return statements


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=SERVER, help="a PostgreSQL server's database")
    parser.add_argument("--tables", type=int, default=500)
    parser.add_argument("--rows", type=int, default=1000, help="rows per table, and the sample")
    parser.add_argument("--seed", type=int, default=18)
    options = parser.parse_args()

    name = f"dp_bench_{uuid.uuid4().hex[:12]}"
    server = make_url(options.url)
    admin = create_engine(server, poolclass=NullPool)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{name}"'))
    url = server.update_query_dict({"options": f"-csearch_path={name}"})
    try:
        engine = create_engine(url, poolclass=NullPool)
        began = time.perf_counter()
        with engine.begin() as connection:
            for statement in schema_sql(options.tables, options.rows, options.seed):
                connection.execute(text(statement))
            connection.execute(text("ANALYZE"))
        engine.dispose()
        made = time.perf_counter() - began
        began = time.perf_counter()
        found = discover(url.render_as_string(hide_password=False), sample_rows=options.rows)
        seconds = time.perf_counter() - began
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        admin.dispose()
    result = {
        "tables": len(found.schema.tables),
        "rows_per_table": options.rows,
        "sample_rows": options.rows,
        "schema_made_seconds": round(made, 1),
        "discover_seconds": round(seconds, 2),
        "paths": len(found.data.entries),
        "tables_reached": len(found.data.tables),
        "gaps": len(found.gaps),
        "configuration_lines": found.configuration.count("\n"),
        "load_average": os.getloadavg()[0],
        "target_seconds": TARGET_SECONDS,
        "result": "PASS" if seconds < TARGET_SECONDS else "FAIL",
    }
    print(json.dumps(result, indent=2))
    raise SystemExit(0 if seconds < TARGET_SECONDS else 1)


if __name__ == "__main__":
    main()
