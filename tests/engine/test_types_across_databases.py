"""A value is written the same on SQLite, PostgreSQL and MariaDB (docs/package-format.md, Records).

Each database holds the same two tables, declared in its own SQL as an application would
declare them: `exact` (the types PostgreSQL encodes itself, by COPY) and `loose` (floats, JSON,
binary, times of day and everything else, read through the cursor). The same rows go into all
three; each is exported by the real source (`SqlSource.parts`), and every record line must be
the bytes of the reference encoding below, which is made from the Python values that were
written, not from any database. On PostgreSQL the `exact` table is also read through the
cursor path, which must write the same bytes as COPY.

Where a database cannot hold a value, the reference says what it holds instead, and the table
in docs/package-format.md says so too: SQLite keeps NUMERIC as a 64-bit float and no zone;
SQLite and MariaDB store -0.0 as 0.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Context, Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from databases import KINDS, MARIADB, POSTGRESQL, SQLITE, scratch_database
from datapolicy.config import SqlSourceConfig, TableConfig
from datapolicy.engine.sources.base import RecordStream
from datapolicy.engine.sources.sql import SqlSource

OWNER = "p"
SCALE = 30  # NUMERIC(65, 30): the widest DECIMAL MariaDB has
JSON_NUMBER_MAX_EXPONENT = 100  # beyond it, numbers in JSON documents take an exponent

EXACT_DDL = {
    SQLITE: "CREATE TABLE exact (id INTEGER PRIMARY KEY, owner VARCHAR(10), label TEXT, "
    "amount NUMERIC(65, 30), flag BOOLEAN, stamp DATETIME, instant TIMESTAMP, day DATE)",
    POSTGRESQL: "CREATE TABLE exact (id INTEGER PRIMARY KEY, owner VARCHAR(10), label TEXT, "
    "amount NUMERIC(65, 30), flag BOOLEAN, stamp TIMESTAMP(6), instant TIMESTAMPTZ, day DATE)",
    MARIADB: "CREATE TABLE exact (id INTEGER PRIMARY KEY, owner VARCHAR(10), label LONGTEXT, "
    "amount DECIMAL(65, 30), flag BOOLEAN, stamp DATETIME(6), instant TIMESTAMP(6) NULL, "
    "day DATE)",
}
LOOSE_DDL = {
    SQLITE: "CREATE TABLE loose (id INTEGER PRIMARY KEY, owner VARCHAR(10), ratio DOUBLE, "
    "doc JSON, bytes BLOB, clock TIME)",
    POSTGRESQL: "CREATE TABLE loose (id INTEGER PRIMARY KEY, owner VARCHAR(10), "
    "ratio DOUBLE PRECISION, doc JSONB, bytes BYTEA, clock TIME(6))",
    MARIADB: "CREATE TABLE loose (id INTEGER PRIMARY KEY, owner VARCHAR(10), ratio DOUBLE, "
    "doc JSON, bytes LONGBLOB, clock TIME(6))",
}
JSONB = {POSTGRESQL: "CAST(:doc AS JSONB)"}


# --- the reference encoding ---------------------------------------------------------------------


def json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def when(value: datetime | date | time | None) -> str:
    """ISO 8601 as PostgreSQL writes it: a fraction of a second without trailing zeros."""
    if value is None:
        return "null"
    return json_text(re.sub(r"\.([0-9]{6})", lambda m: "." + m[1].rstrip("0"), value.isoformat()))


def amount_text(kind: str, amount: Decimal | None) -> str:
    """NUMERIC(65, 30) with all its digits; SQLite holds the nearest 64-bit float instead."""
    if amount is None:
        return "null"
    if kind == SQLITE:
        amount = Decimal(repr(float(amount)))
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -SCALE:  # padded to the scale, never rounded
        amount = amount.quantize(Decimal(1).scaleb(-SCALE), context=Context(prec=100))
    return format(amount, "f")


def ratio_text(kind: str, ratio: float | None) -> str:
    """The double, in orjson's shortest spelling that reads back the same; SQLite and MariaDB
    store -0.0 as 0."""
    if ratio is None:
        return "null"
    if ratio == 0 and kind != POSTGRESQL:
        ratio = 0.0
    return orjson.dumps(ratio).decode()


def document_text(value: Any) -> str:
    """A JSON document in its one spelling: keys sorted, no spaces, numbers exact (a float as
    its shortest decimal in plain digits, never -0; an exponent only beyond 1e±100)."""
    if isinstance(value, dict):
        members = (f"{json_text(k)}:{document_text(v)}" for k, v in sorted(value.items()))
        return "{" + ",".join(members) + "}"
    if isinstance(value, list):
        return "[" + ",".join(document_text(v) for v in value) + "]"
    if isinstance(value, float):
        number = Decimal(repr(value)).copy_abs() if value == 0 else Decimal(repr(value))
        if abs(number.adjusted()) > JSON_NUMBER_MAX_EXPONENT:
            return str(number.normalize())
        return format(number, "f")
    return json_text(value)  # strings, integers, booleans, null


def stored_document_text(kind: str, document: Any) -> str:
    """The document's text; SQLite's JSON columns (NUMERIC affinity) store a bare number as an
    SQLite number: an integral one within 64 bits as an integer, an integer past it as a
    float."""
    if document is None:
        return "null"
    if kind == SQLITE and not isinstance(document, bool):
        if isinstance(document, float) and document.is_integer() and abs(document) < 2**63:
            return str(int(document))
        if isinstance(document, int) and not -(2**63) <= document < 2**63:
            return document_text(float(document))
    return document_text(document)


def blob_text(blob: bytes | None) -> str:
    return "null" if blob is None else json_text({"base64": base64.b64encode(blob).decode()})


def reference(
    kind: str, exact: list[dict[str, Any]], loose: list[dict[str, Any]]
) -> dict[str, bytes]:
    """Each table's JSON Lines as docs/package-format.md says `kind` writes them."""
    exact_lines = [
        f'{{"id":{row["id"]},"owner":"{OWNER}","label":{json_text(row["label"])},'
        f'"amount":{amount_text(kind, row["amount"])},"flag":{json_text(row["flag"])},'
        f'"stamp":{when(row["stamp"])},'
        f'"instant":{when(row["instant"] and row["instant"].astimezone(UTC))},'
        f'"day":{when(row["day"])}}}'
        for row in exact
    ]
    loose_lines = [
        f'{{"id":{row["id"]},"owner":"{OWNER}","ratio":{ratio_text(kind, row["ratio"])},'
        f'"doc":{stored_document_text(kind, row["doc"])},'
        f'"bytes":{blob_text(row["bytes"])},"clock":{when(row["clock"])}}}'
        for row in loose
    ]
    return {
        "exact": "".join(line + "\n" for line in exact_lines).encode(),
        "loose": "".join(line + "\n" for line in loose_lines).encode(),
    }


# --- writing the same rows into each database ---------------------------------------------------


def stored(kind: str, column: str, value: Any) -> Any:
    """`value` as an application using `kind`'s driver would write it."""
    if value is None:
        return None
    if column == "doc":
        return json.dumps(value)
    if kind == SQLITE:
        if column == "amount":
            return float(value)  # what SQLAlchemy's Numeric writes to SQLite
        if isinstance(value, datetime | date | time):
            return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if kind == MARIADB and column == "instant":
        return value.astimezone(UTC).replace(tzinfo=None)  # the session's zone is UTC
    return value


def write(
    engine: Engine, kind: str, exact: list[dict[str, Any]], loose: list[dict[str, Any]]
) -> None:
    with engine.begin() as connection:
        if kind == MARIADB:
            connection.execute(text("SET time_zone = '+00:00'"))
        for table, rows in (("exact", exact), ("loose", loose)):
            connection.execute(text(f"DELETE FROM {table}"))
            if not rows:
                continue
            columns = ["owner", *rows[0]]
            values = [JSONB.get(kind, ":doc") if (c == "doc") else f":{c}" for c in columns]
            connection.execute(
                text(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(values)})"),
                [
                    {"owner": OWNER, **{c: stored(kind, c, v) for c, v in row.items()}}
                    for row in rows
                ],
            )


class Database:
    """One scratch database holding both tables, with a SqlSource exporting from it."""

    def __init__(self, kind: str, url: str):
        self.kind = kind
        self.engine = create_engine(url)
        with self.engine.begin() as connection:
            connection.execute(text(EXACT_DDL[kind]))
            connection.execute(text(LOOSE_DDL[kind]))
        self.source = SqlSource(
            SqlSourceConfig(
                name="types",
                url=url,
                tables=(
                    TableConfig(table="exact", user_key="owner"),
                    TableConfig(table="loose", user_key="owner"),
                ),
            )
        )

    def export(self) -> dict[str, bytes]:
        """Each table's bytes as the real source writes them into a package."""
        written: dict[str, bytes] = {}
        for part in self.source.parts(OWNER):
            assert isinstance(part, RecordStream)
            written[part.name] = b"".join(batch.data for batch in part.batches)
        return written

    def exact_by_cursor(self) -> bytes:
        """The `exact` table read through the cursor path (PostgreSQL exports it by COPY)."""
        config = self.source.config.tables[0]
        schema = self.source.reflect()
        parameters = self.source.parameters(config, OWNER, schema)
        batches = self.source._stream(self.source._table_select(config, schema), parameters, ())
        return b"".join(batch.data for batch in batches)

    def close(self) -> None:
        self.source.close()
        self.engine.dispose()


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Database]]:
    """The two tables on each database, made once for the module (each example rewrites the
    rows)."""
    directory = tmp_path_factory.mktemp("types")
    opened: dict[str, Database] = {}
    with ExitStack() as stack:
        for kind in KINDS:
            opened[kind] = Database(kind, stack.enter_context(scratch_database(kind, directory)))
            stack.callback(opened[kind].close)
        yield opened


def check_same_everywhere(
    databases: dict[str, Database], exact: list[dict[str, Any]], loose: list[dict[str, Any]]
) -> None:
    exact = [{"id": i + 1, **row} for i, row in enumerate(exact)]
    loose = [{"id": i + 1, **row} for i, row in enumerate(loose)]
    for kind, database in databases.items():
        write(database.engine, kind, exact, loose)
        written = database.export()
        expected = reference(kind, exact, loose)
        assert set(written) == set(expected)
        for table, lines in expected.items():
            assert written[table].splitlines() == lines.splitlines(), (kind, table)
            assert written[table] == lines, (kind, table)
        if kind == POSTGRESQL:
            source = database.source
            assert source._encoded_by_database(source.config.tables[0], source.reflect())
            assert database.exact_by_cursor() == written["exact"]


# --- generated values ---------------------------------------------------------------------

TEXT = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")  # PostgreSQL: no NUL
OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(TEXT, max_size=10),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(TEXT, max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
EXACT_ROWS = st.lists(
    st.fixed_dictionaries(
        {
            "label": st.none() | st.text(TEXT, max_size=40),
            "amount": st.none()
            | st.decimals(-(10**35) + 1, 10**35 - 1, places=SCALE, allow_nan=False),
            "flag": st.none() | st.booleans(),
            "stamp": st.none() | st.datetimes(datetime(1000, 1, 1), datetime(9999, 12, 31)),
            # MariaDB's TIMESTAMP ends in 2038
            "instant": st.none()
            | st.datetimes(datetime(1970, 1, 2), datetime(2038, 1, 18), timezones=OFFSETS),
            "day": st.none() | st.dates(date(1000, 1, 1), date(9999, 12, 31)),
        }
    ),
    max_size=4,
)
LOOSE_ROWS = st.lists(
    st.fixed_dictionaries(
        {
            "ratio": st.none() | st.floats(allow_nan=False, allow_infinity=False),
            "doc": st.none() | JSON_VALUES,
            "bytes": st.none() | st.binary(max_size=64),
            "clock": st.none() | st.times(),
        }
    ),
    max_size=4,
)

EXTREME_FLOATS = [
    1.5e-12,
    1 / 3,
    1e308,
    -0.0,
    5e-324,
    1.7976931348623157e308,
    2.2250738585072014e-308,
]
EXTREMES_LOOSE = [
    {"ratio": ratio, "doc": None, "bytes": None, "clock": None} for ratio in EXTREME_FLOATS
] + [
    {
        "ratio": -1e-300,
        "doc": {"b": [1, 2.5, {"c": None}], "a": {"nested": [True, False, 'é\n"😀']}, "": -0.0},
        "bytes": b"\x00\xff\xfe\x80 not utf-8 \xc3\x28",
        "clock": time(23, 59, 59, 500000),
    },
    {
        "ratio": 0.1,
        "doc": [1e308, 5e-324, 1e22, 2**64, -(2**63) - 1, 1.0],
        "bytes": b"",
        "clock": time(0),
    },
    {"ratio": None, "doc": "a string", "bytes": None, "clock": time(12, 0, 0, 1)},
]
EXTREMES_EXACT = [
    {
        "label": 'quote " backslash \\ controls \x01\x1f\x7f \u2028 😀 é',
        "amount": Decimal(
            "12345678901234567890123456789012345.123456789012345678901234567891"[:66]
        ),
        "flag": True,
        "stamp": datetime(2025, 3, 14, 15, 9, 26, 500000),
        "instant": datetime(
            2025, 6, 1, 12, 0, 0, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))
        ),
        "day": date(2024, 2, 29),
    },
    {
        "label": "",
        "amount": Decimal("-0.000000000000000000000000000001"),
        "flag": False,
        "stamp": datetime(1000, 1, 1),
        "instant": datetime(2038, 1, 18, 10, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-14))),
        "day": date(9999, 12, 31),
    },
    {
        "label": None,
        "amount": Decimal("1.5"),
        "flag": None,
        "stamp": None,
        "instant": None,
        "day": None,
    },
]

# Found by Hypothesis: orjson writes time(0, 0, 0, 10000) as "00:00:00.10000" (and PostgreSQL's
# COPY path wrote a timestamp's .5 where the cursor path wrote .500000); SQLite stores a JSON
# document that is a bare 0.0 as the integer 0 (and 2**64 as a float).
FOUND_LOOSE = [
    {"ratio": None, "doc": 0.0, "bytes": None, "clock": time(0, 0, 0, 10000)},
    {"ratio": None, "doc": 2**64, "bytes": None, "clock": time(1, 2, 3, 99999)},
]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(exact=EXACT_ROWS, loose=LOOSE_ROWS)
@example(exact=EXTREMES_EXACT, loose=EXTREMES_LOOSE)
@example(exact=[], loose=FOUND_LOOSE)
def test_every_database_writes_the_reference_encoding(databases, exact, loose):
    """Generated text, decimals, booleans, naive and zoned timestamps, dates, doubles, JSON
    documents, binary and times of day, written into SQLite, PostgreSQL and MariaDB, are
    exported as the reference bytes (the same on every database, except where the table in
    docs/package-format.md says a database holds something else); on PostgreSQL the COPY path
    and the cursor path agree."""
    check_same_everywhere(databases, exact, loose)
