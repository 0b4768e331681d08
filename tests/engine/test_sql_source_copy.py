"""SqlSource's PostgreSQL COPY path: tables whose column types PostgreSQL formats exactly as
Python would are encoded by the database. These tests pin that the two paths write the same
bytes for awkward values, that a table with any other type takes the cursor path, and that an
export abandoned mid-COPY leaves the source usable."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Enum,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    Uuid,
    create_engine,
)
from sqlalchemy.dialects.postgresql import CHAR

from databases import POSTGRESQL, scratch_database
from datapolicy.config import SqlSourceConfig, TableConfig
from datapolicy.engine.sources.sql import SqlSource

USER = "u1"


metadata = MetaData()
everything = Table(
    "everything",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", String(20), nullable=False),
    Column("small", SmallInteger),
    Column("number", Integer),
    Column("flag", Boolean),
    Column("name", String(200)),
    Column("padded", CHAR(5)),
    Column("body", Text),
    Column("amount", Numeric),
    Column("money", Numeric(12, 2)),
    Column("day", Date),
    Column("naive", DateTime),
    Column("aware", DateTime(timezone=True)),
    Column("token", Uuid),
    Column("mood", Enum("calm", 'it\'s "loud"', name="mood")),
)
with_float = Table(
    "with_float",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("user_id", String(20), nullable=False),
    Column("ratio", Float),
)
with_json = Table(
    "with_json",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("user_id", String(20), nullable=False),
    Column("doc", JSON),
    Column("blob", LargeBinary),
)

AWKWARD_TEXT = [
    "plain",
    "",
    'quote " backslash \\ slash / tab \t newline \n return \r',
    "controls \x01\x02\x1f\x7f",
    "unicode é 中文 😀 \u2028 \u2029 \ufeff",
    "a,b;c|d\x01",
    "null",
]
ROWS = [
    {
        "id": i + 1,
        "user_id": USER,
        "small": [-32768, 0, 32767, None, 7, 1, 2][i],
        "number": [2**31 - 1, -(2**31), 0, None, 42, -1, 3][i],
        "flag": [True, False, None, True, False, True, None][i],
        "name": text,
        "padded": ["ab", "abcde", None, "é", " x", "", "y"][i],
        "body": text * 3,
        "amount": [
            Decimal("12.50"),
            Decimal("-0.000001"),
            Decimal("123456789012345678901234567890.123456789"),
            None,
            Decimal("NaN"),
            Decimal("1E+5"),
            Decimal("0"),
        ][i],
        "money": [Decimal("0.10"), Decimal("-99.99"), None, Decimal("1"), Decimal("7"), None, 0][i],
        "day": [date(2024, 2, 29), date(1, 1, 1), date(9999, 12, 31), None, date(1970, 1, 1)][
            i % 5
        ],
        "naive": [
            datetime(2025, 3, 14, 15, 9, 26, 535897),
            datetime(2025, 3, 14, 15, 9, 26),
            None,
            datetime(1900, 1, 1),
        ][i % 4],
        "aware": [
            datetime(2025, 6, 1, 12, 0, tzinfo=UTC),
            datetime(2025, 6, 1, 12, 0, 0, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            None,
        ][i % 3],
        "token": [uuid.UUID(int=i), None][i % 2],
        "mood": ["calm", 'it\'s "loud"', None][i % 3],
    }
    for i, text in enumerate(AWKWARD_TEXT)
]
OTHER_PERSON = {**ROWS[0], "id": 100, "user_id": "u2", "name": "someone else"}


@pytest.fixture
def postgresql(tmp_path: Path) -> Iterator[str]:
    with scratch_database(POSTGRESQL, tmp_path) as url:
        engine = create_engine(url)
        try:
            metadata.create_all(engine)
            with engine.begin() as connection:
                connection.execute(everything.insert(), [*ROWS, OTHER_PERSON])
                connection.execute(with_float.insert(), [{"id": 1, "user_id": USER, "ratio": 1e20}])
                connection.execute(
                    with_json.insert(),
                    [{"id": 1, "user_id": USER, "doc": {"k": [1, 2.5]}, "blob": b"\x00\xff"}],
                )
        finally:
            engine.dispose()
        yield url


def source_for(url: str, *tables: str, batch_size: int = 1000) -> SqlSource:
    return SqlSource(
        SqlSourceConfig(
            name="shop",
            url=url,
            batch_size=batch_size,
            tables=tuple(TableConfig(table=name, user_key="user_id") for name in tables),
        )
    )


def both_paths(source: SqlSource, table: str) -> tuple[bytes, bytes]:
    config = next(t for t in source.config.tables if t.output_name == table)
    schema = source.reflect()
    parameters = source.parameters(config, USER, schema)
    by_database = b"".join(
        batch.data for batch in source._copy_stream(source._json_select(config, schema), parameters)
    )
    by_python = b"".join(
        batch.data for batch in source._stream(source._table_select(config, schema), parameters, ())
    )
    return by_database, by_python


def test_the_database_writes_the_bytes_python_would(postgresql):
    """For text with quotes, backslashes, control characters and non-BMP characters, padded
    CHAR, integers at their limits, decimals (NaN, huge, tiny, exponent), dates, times with and
    without zones and microseconds, UUIDs, enums and NULLs, the COPY path and the cursor path
    write byte-identical JSON Lines, and only the person's rows."""
    source = source_for(postgresql, "everything")
    try:
        by_database, by_python = both_paths(source, "everything")
        assert by_database == by_python
        records = [orjson.loads(line) for line in by_database.splitlines()]
        assert [r["id"] for r in records] == [row["id"] for row in ROWS]
        assert [r["name"] for r in records] == AWKWARD_TEXT
        assert records[4]["amount"] == "NaN"
        assert b'"amount":12.50,' in by_database.splitlines()[0]
    finally:
        source.close()


def test_only_exactly_formatted_types_take_the_copy_path(postgresql):
    """A table with a float, JSON or binary column is read through the cursor (PostgreSQL
    would write 1e+20, keep JSON's spacing, write bytea as hex); the others by COPY."""
    source = source_for(postgresql, "everything", "with_float", "with_json")
    try:
        schema = source.reflect()
        chosen = {
            t.output_name: source._encoded_by_database(t, schema) for t in source.config.tables
        }
        assert chosen == {"everything": True, "with_float": False, "with_json": False}
        rows = {
            part.name: b"".join(batch.data for batch in part.batches) for part in source.parts(USER)
        }
        assert orjson.loads(rows["with_float"]) == {"id": 1, "user_id": USER, "ratio": 1e20}
        assert orjson.loads(rows["with_json"]) == {
            "id": 1,
            "user_id": USER,
            "doc": {"k": [1, 2.5]},
            "blob": {"base64": "AP8="},
        }
    finally:
        source.close()


def test_copy_batches_follow_batch_size(postgresql):
    """COPY batches hold at most batch_size records, each batch whole lines."""
    source = source_for(postgresql, "everything", batch_size=3)
    try:
        (part,) = source.parts(USER)
        batches = list(part.batches)
        assert [b.records for b in batches] == [3, 3, 1]
        assert all(b.data.count(b"\n") == b.records and b.data.endswith(b"\n") for b in batches)
    finally:
        source.close()


def test_a_copy_abandoned_midway_leaves_the_source_usable(postgresql):
    """An export that stops after the first batch of a COPY (cancelled, or its package could
    not be written) closes that connection; the next read of the same source works and gets
    every row."""
    source = source_for(postgresql, "everything", batch_size=1)
    try:
        (part,) = source.parts(USER)
        first = next(part.batches)
        assert first.records == 1
        part.batches.close()
        (again,) = source.parts(USER)
        assert sum(batch.records for batch in again.batches) == len(ROWS)
    finally:
        source.close()
