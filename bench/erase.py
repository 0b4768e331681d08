"""Erasure against hand-written DELETE/UPDATE statements, in one run (issue 17: at most 2x,
memory flat).

One person with `--rows` rows over three tables (a customer row, orders, order items: a tenth
orders, the rest items), among `--others` other people's rows, is made three times in the
database at `--url` (default: a SQLite file in a temporary directory), under three table
prefixes. On the first copy, the statements a person would write by hand (DELETE the items of
the person's orders, DELETE the orders, UPDATE the customer row's e-mail to NULL) run in one
transaction. On the second, datapolicy's engine erases the person with the same rules (delete,
delete, mask: `SqlEraser`), its receipt's key hashes taken as it goes (`KeyHashes`, which hashes
the keys in Python, or, on MySQL/MariaDB, takes the hashes the database computed): `engine`.
On the third, the whole of an erasure operation but its queue: `erase_into_package`, which
also writes the package with its receipt (to a temporary file): `operation`. Each is timed
once per round (`--rounds`, the copies made afresh each round); the ratios are of the best
times of the same run, against the hand-written statements (and each round's are listed, as
[hand-written, engine, operation, the engine's key hashing in Python]: on a shared machine,
the best is the least disturbed).

Then memory: for `--rows` / 10 and `--rows` rows, a fresh process (`--measure erase` or
`--measure dry-run`) runs `erase_into_package` (a real erasure, or a dry run, whose package
holds every row and cell) and reports its peak resident size (ru_maxrss) above what it held
before starting, and the peak of Python's allocations (tracemalloc, a separate run): flat in
the rows if nothing is held per row.

    python bench/erase.py                    # 100,000 rows on SQLite (do not run on a busy box)
    python bench/erase.py --rows 2000        # a quick look
    python bench/erase.py --url postgresql+psycopg://postgres@127.0.0.1/test
    python bench/erase.py --no-memory        # the ratios only
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

import datapolicy.discovery.schema  # noqa: F401 (imported once per process: not timed)
from datapolicy.config import SqlSourceConfig, TableConfig
from datapolicy.engine.directory import User
from datapolicy.engine.erasure import Masker, SqlEraser
from datapolicy.engine.erasure.package import erase_into_package
from datapolicy.engine.erasure.receipt import KeyHashes
from datapolicy.engine.exporter import Progress
from datapolicy.engine.report import TEMPLATES
from datapolicy.engine.sources.sql import SqlSource
from datapolicy.model import Operation, OperationStatus, OperationType

PERSON = 1
for _template in ("report.html", "receipt.html"):
    TEMPLATES.get_template(_template)  # compiled once per process (a worker's): not timed


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


MASKER = Masker(b"bench secret 0123456789")
PREFIXES = ("erasebench_hand_", "erasebench_engine_", "erasebench_op_")


def source_for(url: str, prefix: str) -> SqlSource:
    tables = (
        TableConfig(
            table=f"{prefix}customers", user_key="id", erase="mask", mask={"email": "null"}
        ),
        TableConfig(table=f"{prefix}orders", parent=f"{prefix}customers", erase="delete"),
        TableConfig(table=f"{prefix}items", parent=f"{prefix}orders", erase="delete"),
    )
    return SqlSource(SqlSourceConfig(name="bench", url=url, tables=tables))


def by_engine(url: str, prefix: str) -> tuple[float, float, int]:
    """The engine alone, with the receipt's key hashes taken as it goes; also the part of its
    time spent hashing them."""
    source = source_for(url, prefix)
    hashes = KeyHashes(b"bench receipt key")
    hashing = 0.0

    def take(table: str, batch: Sequence[Sequence[Any]]) -> None:
        nonlocal hashing
        began = time.perf_counter()
        hashes.add("bench", table, batch)
        hashing += time.perf_counter() - began

    began = time.perf_counter()
    results = SqlEraser(source).erase(str(PERSON), MASKER, dry_run=False, keys=take, hashed=hashes)
    elapsed = time.perf_counter() - began
    hashes.close()
    source.close()
    return elapsed, hashing, sum(r.rows for r in results)


def by_operation(url: str, prefix: str, *, dry_run: bool = False) -> tuple[float, int]:
    """`erase_into_package` into a temporary file: the engine, the receipt, the package."""
    source = source_for(url, prefix)
    now = datetime.now(UTC)
    operation = Operation(
        id="bench",
        user_id=str(PERSON),
        status=OperationStatus.RUNNING,
        progress=0.0,
        storage_location=None,
        submitted_at=now,
        completed_at=None,
        version=1,
        operation_type=OperationType.ERASE,
    )
    with tempfile.TemporaryFile() as package:
        began = time.perf_counter()
        erase_into_package(
            operation,
            User(str(PERSON)),
            [source],
            package,
            Progress(),
            lambda: now,
            MASKER,
            dry_run=dry_run,
            state={},
            committed=lambda source, lines: None,
        )
        elapsed = time.perf_counter() - began
        size = package.tell()
    source.close()
    return elapsed, size


def high_water_kib() -> int:
    """This process's peak resident size (Linux's VmHWM: unlike ru_maxrss, not inherited
    from the process that started this one)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def measure(url: str, prefix: str, what: str) -> dict[str, int]:
    """In this (fresh) process: the peak resident size an erasure (or a dry run) adds to what
    the process held once ready (its imports, a connection made and closed)."""
    source_for(url, prefix).close()
    before = high_water_kib()
    by_operation(url, prefix, dry_run=what == "dry-run")
    after = high_water_kib()
    return {"peak_rss_kib": after, "added_rss_kib": after - before}


def memory(url: str, rows: int, others: int) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    for what in ("erase", "dry-run"):
        for count in (rows // 10, rows):
            make(url, PREFIXES[2], count, others)
            command = [sys.executable, __file__, "--url", url, "--measure", what]
            measured = json.loads(subprocess.run(command, check=True, capture_output=True).stdout)
            make(url, PREFIXES[2], count, others)
            tracemalloc.start()
            by_operation(url, PREFIXES[2], dry_run=what == "dry-run")
            measured["python_peak_bytes"] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            found[f"{what} {count} rows"] = measured
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--others", type=int, default=100_000)
    parser.add_argument("--url")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--measure", choices=("erase", "dry-run"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.measure:
        print(json.dumps(measure(arguments.url, PREFIXES[2], arguments.measure)))
        return
    with tempfile.TemporaryDirectory() as directory:
        url = arguments.url or f"sqlite:///{Path(directory) / 'bench.sqlite3'}"
        times: list[tuple[float, float, float, float]] = []
        for _ in range(arguments.rounds):
            for prefix in PREFIXES:
                make(url, prefix, arguments.rows, arguments.others)
            hand = by_hand(url, PREFIXES[0])
            engine, hashing, rows = by_engine(url, PREFIXES[1])
            operation, size = by_operation(url, PREFIXES[2])
            times.append((hand, engine, operation, hashing))
        hand, engine, operation, hashing = (min(column) for column in zip(*times, strict=True))
        report: dict[str, object] = {
            "database": url.split(":")[0],
            "rows": arguments.rows,
            "erased_rows": rows,
            "hand_written_s": round(hand, 3),
            "engine_s": round(engine, 3),
            "of_which_key_hashing_s": round(hashing, 3),
            "operation_s": round(operation, 3),
            "engine_ratio": round(engine / hand, 2),
            "operation_ratio": round(operation / hand, 2),
            "package_bytes": size,
            "rounds_s": [[round(t, 3) for t in round_] for round_ in times],
            "target": "ratio <= 2",
        }
        print(json.dumps(report, indent=2), flush=True)
        if not arguments.no_memory:
            found = memory(url, arguments.rows, arguments.others)
            print(json.dumps({"memory": found}, indent=2))
        for prefix in PREFIXES:
            drop(url, prefix)


def drop(url: str, prefix: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        for name in ("items", "orders", "customers"):
            connection.execute(text(f"DROP TABLE IF EXISTS {prefix}{name}"))
    engine.dispose()


if __name__ == "__main__":
    main()
