"""Column classifier throughput: `classify_column` over a generated schema's samples, as
`datapolicy discover` calls it (src/datapolicy/discovery/classify.py).

`python bench/classify_throughput.py` classifies `--tables` (500) tables of ten columns with
`--samples` (1,000) values each, and prints columns per second and the total time (wall clock
and CPU: on a shared machine the CPU time is the one to compare), which must stay well inside
discover's 30 s budget for a 500-table schema. The values are made in memory
first (seeded; not timed). Each table mixes what real schemas hold: integer keys, timestamps,
status words, amounts and free text (the columns that match nothing, the common case) with
e-mail addresses, phone numbers, IBANs, IP addresses, names, dates of birth and password
hashes (the columns every detector reads to the end and validates). A column's kind cycles with
the table, so each kind is measured on about the same number of columns.
"""

from __future__ import annotations

import argparse
import random
import string
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta

from stdnum import iban

from datapolicy.discovery.classify import classify_column

Column = tuple[str, str, Callable[[random.Random], object]]

WORDS = ("order", "paid", "shipped", "lorem", "ipsum", "dolor", "sit", "amet", "elit")


def _iban(rng: random.Random) -> str:
    bban = "".join(rng.choices(string.digits, k=18))
    return f"DE{iban.calc_check_digits('DE00' + bban)}{bban}"


def _text(rng: random.Random) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(3, 30)))


PLAIN: tuple[Column, ...] = (
    ("id", "bigint", lambda rng: rng.randrange(1, 10**9)),
    ("created_at", "timestamp with time zone",
     lambda rng: datetime(2020, 1, 1) + timedelta(seconds=rng.randrange(10**8))),
    ("status", "varchar(16)", lambda rng: rng.choice(("new", "paid", "shipped"))),
    ("amount", "numeric(10,2)", lambda rng: rng.randrange(100, 100_000) / 100),
    ("notes", "text", _text),
    ("reference", "varchar(32)", lambda rng: "".join(rng.choices(string.ascii_uppercase, k=12))),
)  # fmt: skip
PERSONAL: tuple[Column, ...] = (
    ("email", "varchar(255)", lambda rng: f"user{rng.randrange(10**6)}@example.com"),
    ("col_a", "text", lambda rng: f"person.{rng.randrange(10**6)}@mail.example.org"),
    ("phone", "varchar(32)", lambda rng: f"+44 20 7946 {rng.randrange(10**4):04d}"),
    ("col_b", "text", lambda rng: f"+1 650 253 {rng.randrange(10**4):04d}"),
    ("iban", "varchar(34)", _iban),
    ("last_ip", "varchar(45)", lambda rng: f"10.{rng.randrange(256)}.{rng.randrange(256)}.1"),
    ("name", "text", lambda rng: rng.choice(("Ann Lee", "Bo Chan", "Cy Diaz"))),
    ("dob", "date", lambda rng: date(1940, 1, 1) + timedelta(days=rng.randrange(25_000))),
    ("password_hash", "varchar(60)",
     lambda rng: "$2b$12$" + "".join(rng.choices(string.ascii_letters + "./", k=53))),
)  # fmt: skip


def make_schema(tables: int, samples: int, seed: int) -> list[tuple[str, str, str, list[object]]]:
    """(table, column, type, samples) for every column: six plain and four personal a table."""
    rng = random.Random(seed)
    columns = []
    for number in range(tables):
        table = f"users_{number}" if number % 5 == 0 else f"table_{number}"
        picked = [*PLAIN, *(PERSONAL[(number + k) % len(PERSONAL)] for k in range(4))]
        for name, sql_type, make in picked:
            values = [None if rng.random() < 0.05 else make(rng) for _ in range(samples)]
            columns.append((table, name, sql_type, values))
    return columns


def main() -> None:
    """Generate, then time one classification of every column."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=500)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args()
    schema = make_schema(options.tables, options.samples, options.seed)
    classify_column("warm", "up", "text", ["a@example.com"])  # imports and first-use tables
    started, cpu_started = time.perf_counter(), time.process_time()
    personal = sum(classify_column(*column).personal for column in schema)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(
        f"{len(schema)} columns x {options.samples} samples in {elapsed:.2f} s"
        f" ({cpu:.2f} s of CPU): {len(schema) / elapsed:,.0f} columns/s,"
        f" {len(schema) / cpu:,.0f} a CPU second ({personal} proposed as personal)"
    )


if __name__ == "__main__":
    main()
