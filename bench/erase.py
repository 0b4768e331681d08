"""Erasure against hand-written DELETE/UPDATE statements, in one run (issue 17: at most 2x).

One person with `--rows` rows over three tables (a customer row, orders, order items: a tenth
orders, the rest items), among `--others` other people's rows, is made twice in the database at
`--url` (default: a SQLite file in a temporary directory), under two table prefixes. Then, on
one copy, the statements a person would write by hand (DELETE the items of the person's orders,
DELETE the orders, UPDATE the customer row's e-mail to NULL) run in one transaction; on the
other, datapolicy's SqlEraser erases the person with the same rules (delete, delete, mask).
Each is timed; the report is the ratio, and the peak of Python's allocations during the
erasure (tracemalloc), which stays flat in the number of rows only if nothing is held per row
beyond the keys.

    python bench/erase.py                    # 100,000 rows on SQLite (do not run on a busy box)
    python bench/erase.py --rows 2000        # a quick look
    python bench/erase.py --url postgresql+psycopg://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

from sqlalchemy import create_engine, text

import datapolicy.discovery.schema  # noqa: F401 (imported once per process: not timed)
from datapolicy.config import SqlSourceConfig, TableConfig
from datapolicy.engine.erasure import Masker, SqlEraser
from datapolicy.engine.sources.sql import SqlSource

PERSON = 1


def make(url: str, prefix: str, rows: int, others: int) -> None:
    """The three tables under `prefix`, the person's `rows` rows and the others'."""
    engine = create_engine(url)
    orders = max(1, rows // 10)
    items = rows - orders - 1
    with engine.begin() as connection:
        for statement in (
            f"DROP TABLE IF EXISTS {prefix}items",
            f"DROP TABLE IF EXISTS {prefix}orders",
            f"DROP TABLE IF EXISTS {prefix}customers",
            f"CREATE TABLE {prefix}customers (id INTEGER PRIMARY KEY, email VARCHAR(120))",
            f"CREATE TABLE {prefix}orders (id INTEGER PRIMARY KEY, customer_id INTEGER "
            f"REFERENCES {prefix}customers(id), total INTEGER)",
            f"CREATE TABLE {prefix}items (id INTEGER PRIMARY KEY, order_id INTEGER "
            f"REFERENCES {prefix}orders(id), sku VARCHAR(20))",
            f"CREATE INDEX {prefix}orders_customer ON {prefix}orders(customer_id)",
            f"CREATE INDEX {prefix}items_order ON {prefix}items(order_id)",
        ):
            connection.execute(text(statement))
        people = range(1, 2 + others // 100)
        connection.execute(
            text(f"INSERT INTO {prefix}customers VALUES (:id, :email)"),
            [{"id": p, "email": f"p{p}@example.com"} for p in people],
        )
        all_orders = [
            {
                "id": i,
                "customer_id": PERSON if i <= orders else 2 + i % (len(people) - 1 or 1),
                "total": i,
            }
            for i in range(1, orders + others // 10 + 1)
        ]
        connection.execute(
            text(f"INSERT INTO {prefix}orders VALUES (:id, :customer_id, :total)"), all_orders
        )
        connection.execute(
            text(f"INSERT INTO {prefix}items VALUES (:id, :order_id, :sku)"),
            [
                {
                    "id": i,
                    "order_id": 1 + i % orders
                    if i <= items
                    else orders + 1 + i % (others // 10 or 1),
                    "sku": "A",
                }
                for i in range(1, items + others + 1)
            ],
        )
    engine.dispose()


def by_hand(url: str, prefix: str) -> float:
    engine = create_engine(url)
    began = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(
            text(
                f"DELETE FROM {prefix}items WHERE order_id IN "
                f"(SELECT id FROM {prefix}orders WHERE customer_id = :p)"
            ),
            {"p": PERSON},
        )
        connection.execute(
            text(f"DELETE FROM {prefix}orders WHERE customer_id = :p"), {"p": PERSON}
        )
        connection.execute(
            text(f"UPDATE {prefix}customers SET email = NULL WHERE id = :p"), {"p": PERSON}
        )
    elapsed = time.perf_counter() - began
    engine.dispose()
    return elapsed


def by_datapolicy(url: str, prefix: str) -> tuple[float, int, int]:
    tables = (
        TableConfig(
            table=f"{prefix}customers", user_key="id", erase="mask", mask={"email": "null"}
        ),
        TableConfig(table=f"{prefix}orders", parent=f"{prefix}customers", erase="delete"),
        TableConfig(table=f"{prefix}items", parent=f"{prefix}orders", erase="delete"),
    )
    source = SqlSource(SqlSourceConfig(name="bench", url=url, tables=tables))
    tracemalloc.start()
    began = time.perf_counter()
    results = SqlEraser(source).erase(
        str(PERSON), Masker(b"bench secret 0123456789"), dry_run=False
    )
    elapsed = time.perf_counter() - began
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    source.close()
    return elapsed, peak, sum(r.rows for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--others", type=int, default=100_000)
    parser.add_argument("--url")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        url = arguments.url or f"sqlite:///{Path(directory) / 'bench.sqlite3'}"
        make(url, "hand_", arguments.rows, arguments.others)
        make(url, "dp_", arguments.rows, arguments.others)
        hand = by_hand(url, "hand_")
        ours, peak, rows = by_datapolicy(url, "dp_")
    report = {
        "rows": arguments.rows,
        "erased_rows": rows,
        "hand_written_s": round(hand, 3),
        "datapolicy_s": round(ours, 3),
        "ratio": round(ours / hand, 2),
        "peak_python_bytes": peak,
        "target": "ratio <= 2",
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
