"""How each database's own types are read (engine/sources/sqltypes.py): the types one database
has and the others lack, the values a column may hold beyond its declared type, and stored JSON
that is hostile. Each test declares its table in the database's own SQL, exports it with the real
source and pins the record lines docs/package-format.md promises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import orjson
import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from databases import MARIADB, POSTGRESQL, SQLITE, scratch_database
from datapolicy.config import QueryConfig, SqlSourceConfig, TableConfig
from datapolicy.engine.sources.base import RecordStream, SourceError
from datapolicy.engine.sources.sql import SqlSource

Export = Callable[..., dict[str, list[bytes]]]


@pytest.fixture
def export(tmp_path: Path) -> Iterator[Export]:
    """export(kind, statements, query=None, url_options=""): run `statements` in a scratch
    `kind` database, then export table `t` (the rows whose `owner` is 'p') and, if given, the
    query; returns each part's record lines. `url_options` are PostgreSQL session settings
    put in the source's URL, standing in for a server configured otherwise."""
    with ExitStack() as stack:

        def run(
            kind: str, statements: list[str], query: str | None = None, url_options: str = ""
        ) -> dict[str, list[bytes]]:
            url = stack.enter_context(scratch_database(kind, tmp_path))
            engine = create_engine(url)
            try:
                with engine.begin() as connection:
                    for statement in statements:
                        connection.exec_driver_sql(statement)
            finally:
                engine.dispose()
            if url_options:
                parsed = make_url(url)
                options = f"{parsed.query['options']} {url_options}"
                url = parsed.update_query_dict({"options": options}).render_as_string(False)
            source = SqlSource(
                SqlSourceConfig(
                    name="types",
                    url=url,
                    tables=(TableConfig(table="t", user_key="owner"),),
                    queries=(QueryConfig(name="q", sql=query),) if query else (),
                )
            )
            stack.callback(source.close)
            lines: dict[str, list[bytes]] = {}
            for part in source.parts("p"):
                assert isinstance(part, RecordStream)
                lines[part.name] = b"".join(batch.data for batch in part.batches).splitlines()
            return lines

        yield run


# --- MariaDB / MySQL ------------------------------------------------------------------------------
def test_mariadb_double_keeps_every_digit(export):
    """DOUBLE and REAL are written as the double they hold, not rounded to 10 places
    (main wrote 1.5e-12 as 0.0000000000 and 1/3 as 0.3333333333)."""
    lines = export(
        MARIADB,
        [
            "CREATE TABLE t (id INT PRIMARY KEY, owner VARCHAR(5), d DOUBLE, r REAL)",
            "INSERT INTO t VALUES (1, 'p', 1.5e-12, 1.5e-12), (2, 'p', 1e308, 5e-324), "
            "(3, 'p', 0.3333333333333333, 123456789.125)",
        ],
    )["t"]
    assert lines == [
        b'{"id":1,"owner":"p","d":1.5e-12,"r":1.5e-12}',
        b'{"id":2,"owner":"p","d":1e+308,"r":5e-324}',
        b'{"id":3,"owner":"p","d":0.3333333333333333,"r":123456789.125}',
    ]


def test_mariadb_boolean_json_time_set_and_bit(export):
    """BOOLEAN (TINYINT(1)) is true/false, and a number other than 0 or 1 stays that number;
    JSON is the document (a LONGTEXT without MariaDB's json_valid check stays text); TIME is a
    duration as MariaDB writes it, beyond 24 hours and negative too (main wrapped 25:00:00 to
    01:00:00); SET is a list in the type's order; BIT(8) is its bits, as PostgreSQL writes
    bit(8)."""
    lines = export(
        MARIADB,
        [
            "CREATE TABLE t (id INT PRIMARY KEY, owner VARCHAR(5), flag BOOLEAN, "
            "doc JSON, `my doc` JSON, plain LONGTEXT, span TIME(6), "
            "tags SET('x', 'y', 'z'), bits BIT(8))",
            """INSERT INTO t VALUES
            (1, 'p', TRUE, '{"b": 1, "a": [1.50, 2]}', '[]', '{"a": 1}', '25:00:00',
             'z,x', b'101'),
            (2, 'p', FALSE, 'null', '{}', '{}', '-838:59:59', '', b'0'),
            (3, 'p', 5, '"text"', 'true', '', '12:00:00.010000', 'y', b'11111111')""",
        ],
    )["t"]
    assert lines == [
        b'{"id":1,"owner":"p","flag":true,"doc":{"a":[1.50,2],"b":1},"my doc":[],'
        b'"plain":"{\\"a\\": 1}","span":"25:00:00","tags":["x","z"],"bits":"00000101"}',
        b'{"id":2,"owner":"p","flag":false,"doc":null,"my doc":{},"plain":"{}",'
        b'"span":"-838:59:59","tags":[],"bits":"00000000"}',
        b'{"id":3,"owner":"p","flag":5,"doc":"text","my doc":true,"plain":"",'
        b'"span":"12:00:00.01","tags":["y"],"bits":"11111111"}',
    ]


def test_mariadb_timestamp_is_an_instant_in_utc(export):
    """TIMESTAMP is an instant: written in UTC with its offset, like PostgreSQL's timestamptz,
    whatever the session's zone was when it was stored; DATETIME has no zone."""
    lines = export(
        MARIADB,
        [
            "CREATE TABLE t (id INT PRIMARY KEY, owner VARCHAR(5), at TIMESTAMP(6) NULL, "
            "local DATETIME(6))",
            "SET time_zone = '+05:30'",
            "INSERT INTO t VALUES (1, 'p', '2025-06-01 12:00:00.5', '2025-06-01 12:00:00.5')",
        ],
    )["t"]
    assert lines == [
        b'{"id":1,"owner":"p","at":"2025-06-01T06:30:00.5+00:00","local":"2025-06-01T12:00:00.5"}'
    ]


# --- PostgreSQL -----------------------------------------------------------------------------------
def test_postgresql_intervals_times_and_instants_do_not_depend_on_the_server(export):
    """An interval is ISO 8601 with its months and years (psycopg read a month as 30 days), a
    time with a zone keeps its offset (orjson refused it: the export failed), and an instant is
    in UTC: whatever the server's TimeZone and IntervalStyle, in a table and in a query."""
    lines = export(
        POSTGRESQL,
        [
            "CREATE TABLE t (id INT PRIMARY KEY, owner TEXT, span INTERVAL, clock TIMETZ, "
            "at TIMESTAMPTZ)",
            "INSERT INTO t VALUES (1, 'p', '1 year 2 months 3 days 04:05:06.5', "
            "'12:00:00.01+05:30', '2025-06-01 12:00:00+05:30'), (2, 'p', '-1 day', NULL, NULL)",
        ],
        query="SELECT span, clock, at FROM t WHERE owner = :user_id ORDER BY id",
        url_options="-cTimeZone=Asia/Kolkata -cIntervalStyle=sql_standard",
    )
    assert lines["t"] == [
        b'{"id":1,"owner":"p","span":"P1Y2M3DT4H5M6.5S","clock":"12:00:00.01+05:30",'
        b'"at":"2025-06-01T06:30:00+00:00"}',
        b'{"id":2,"owner":"p","span":"P-1D","clock":null,"at":null}',
    ]
    assert lines["q"] == [
        b'{"span":"P1Y2M3DT4H5M6.5S","clock":"12:00:00.01+05:30","at":"2025-06-01T06:30:00+00:00"}',
        b'{"span":"P-1D","clock":null,"at":null}',
    ]


def test_postgresql_floats_decimals_json_arrays_and_bits(export):
    """double precision NaN and infinities are null (JSON has no such numbers) where numeric's
    are strings; json keeps no spacing or repeated key that jsonb would drop, so the two write
    one document the same; arrays are JSON arrays; bit(8) is its bits."""
    lines = export(
        POSTGRESQL,
        [
            "CREATE TABLE t (id INT PRIMARY KEY, owner TEXT, ratio FLOAT8, small REAL, "
            "amount NUMERIC, doc JSON, docb JSONB, list INT[], words TEXT[], bits BIT(8))",
            """INSERT INTO t VALUES
            (1, 'p', 'NaN', 'NaN', 'NaN', '{"b": 1, "a": 2, "a": [1.50, 1e2, -0]}',
             '{"b": 1, "a": 2, "a": [1.50, 1e2, -0]}', '{1,NULL,3}', '{"x,y", "é"}', B'00000101'),
            (2, 'p', 'Infinity', '-Infinity', 'Infinity', '1e400', '1e400', '{}', '{}', NULL),
            (3, 'p', '-0', 0.1, -0.000001, '"\\u00e9"', '"\\u00e9"', NULL, NULL, NULL)""",
        ],
    )["t"]
    assert lines == [
        b'{"id":1,"owner":"p","ratio":null,"small":null,"amount":"NaN",'
        b'"doc":{"a":[1.50,100,0],"b":1},"docb":{"a":[1.50,100,0],"b":1},"list":[1,null,3],'
        b'"words":["x,y","\xc3\xa9"],"bits":"00000101"}',
        b'{"id":2,"owner":"p","ratio":null,"small":null,"amount":"Infinity","doc":1E+400,'
        b'"docb":1E+400,"list":[],"words":[],"bits":null}',
        b'{"id":3,"owner":"p","ratio":-0.0,"small":0.1,"amount":-0.000001,"doc":"\xc3\xa9",'
        b'"docb":"\xc3\xa9","list":null,"words":null,"bits":null}',
    ]


def test_postgresql_dates_python_cannot_hold_are_written_not_fatal(export):
    """`infinity`, BC and (in a table PostgreSQL encodes itself) the rest are written as
    PostgreSQL's text by both paths, where psycopg's error stopped every export of a table
    read through the cursor (here: one with a jsonb column) and of every query."""
    rows = (
        "INSERT INTO t{n} VALUES (1, 'p', 'infinity', '-infinity', '0044-03-15 10:00 BC', "
        "'infinity'{extra}), (2, 'p', '2025-06-01', '2025-06-01 12:00', '2025-06-01 12:00', "
        "'2025-06-01 12:00+00'{extra})"
    )
    columns = (
        "(id INT PRIMARY KEY, owner TEXT, day DATE, stamp TIMESTAMP, old TIMESTAMP, at TIMESTAMPTZ"
    )
    lines = export(
        POSTGRESQL,
        [
            f"CREATE TABLE t {columns}, doc JSONB)",
            f"CREATE TABLE t2 {columns})",
            rows.format(n="", extra=", '{}'"),
            rows.format(n="2", extra=""),
        ],
        query="SELECT id, owner, day, stamp, old, at FROM t2 WHERE owner = :user_id ORDER BY id",
    )
    expected = [
        b'{"id":1,"owner":"p","day":"infinity","stamp":"-infinity",'
        b'"old":"0044-03-15T10:00:00 BC","at":"infinity"',
        b'{"id":2,"owner":"p","day":"2025-06-01","stamp":"2025-06-01T12:00:00",'
        b'"old":"2025-06-01T12:00:00","at":"2025-06-01T12:00:00+00:00"',
    ]
    assert lines["t"] == [line + b',"doc":{}}' for line in expected]
    assert lines["q"] == [line + b"}" for line in expected]


# --- SQLite ---------------------------------------------------------------------------------------
def test_sqlite_values_that_do_not_fit_their_declared_type_are_written_as_stored(export):
    """SQLite keeps any value in any column: a BOOLEAN holding 5 stays 5, a DATETIME or DATE
    that is not a date stays its text (main's reader stopped the export), NUMERIC text that
    is not a number stays text, JSON that is not JSON stays text; ISO 8601 in any spelling
    (`T` or a space, an offset or `Z`) is written as the other databases write it; a NUL in
    text (which PostgreSQL cannot store) is kept."""
    lines = export(
        SQLITE,
        [
            "CREATE TABLE t (id INTEGER PRIMARY KEY, owner TEXT, flag BOOLEAN, "
            "at TIMESTAMP, day DATE, clock TIME, amount NUMERIC(10, 2), doc JSON, body TEXT)",
            """INSERT INTO t VALUES
            (1, 'p', 1, '2025-06-01T12:00:00+05:30', '2024-02-29', '12:00:00.01', 12.5,
             '{"b":1,"a":1e2}', 'a' || char(0) || 'b'),
            (2, 'p', 5, '2025-06-01 12:00:00Z', 'soon', '25:00', 'n/a', '{not json', ''),
            (3, 'p', 0, 'yesterday', 20240229, 'noon', 3, '[1e999999999]', NULL)""",
        ],
    )["t"]
    assert lines == [
        b'{"id":1,"owner":"p","flag":true,"at":"2025-06-01T06:30:00+00:00","day":"2024-02-29",'
        b'"clock":"12:00:00.01","amount":12.50,"doc":{"a":100,"b":1},"body":"a\\u0000b"}',
        b'{"id":2,"owner":"p","flag":5,"at":"2025-06-01T12:00:00+00:00","day":"soon",'
        b'"clock":"25:00","amount":"n/a","doc":"{not json","body":""}',
        b'{"id":3,"owner":"p","flag":false,"at":"yesterday","day":20240229,"clock":"noon",'
        b'"amount":3.00,"doc":[1E+999999999],"body":null}',
    ]


# --- on every database that has them --------------------------------------------------------------
@pytest.mark.parametrize("kind", [SQLITE, MARIADB])
def test_a_huge_exponent_in_stored_json_stays_an_exponent(export, kind):
    """A number in a stored JSON document with an enormous exponent is written with an
    exponent, not as a gigabyte of zeros (the document is one line of a package)."""
    lines = export(
        kind,
        [
            "CREATE TABLE t (id INTEGER PRIMARY KEY, owner VARCHAR(5), doc JSON)",
            "INSERT INTO t VALUES (1, 'p', '[1e999999999, -1.50e-999999999, 2E+101]')",
        ],
    )["t"]
    assert lines == [b'{"id":1,"owner":"p","doc":[1E+999999999,-1.5E-999999999,2E+101]}']


def test_stored_json_that_cannot_be_respelled_is_written_as_its_text(export):
    """SQLite checks no JSON: a lone surrogate escape (no UTF-8 spelling) and nesting deeper
    than the parsers go are written as their text, and the export completes (MariaDB and
    PostgreSQL refuse to store either)."""
    deep = "[" * 5000 + "]" * 5000
    lines = export(
        SQLITE,
        [
            "CREATE TABLE t (id INTEGER PRIMARY KEY, owner VARCHAR(5), doc JSON)",
            f"""INSERT INTO t VALUES (1, 'p', '["\\ud800"]'), (2, 'p', '{deep}')""",
        ],
    )["t"]
    assert lines[0] == b'{"id":1,"owner":"p","doc":"[\\"\\\\ud800\\"]"}'
    assert orjson.loads(lines[1])["doc"] == deep


@pytest.mark.parametrize("mistake", ["missing.db", "missing-directory/store.db"])
def test_a_mistyped_sqlite_source_path_is_an_error_and_creates_nothing(
    tmp_path: Path, mistake: str
):
    """A SQLite source whose file does not exist fails its check, and no empty database is
    left at the mistyped path (in which every export and coverage check would find nothing)."""
    path = tmp_path / mistake
    source = SqlSource(
        SqlSourceConfig(
            name="shop", url=f"sqlite:///{path}", tables=[TableConfig(table="t", user_key="u")]
        )
    )
    try:
        with pytest.raises(SourceError, match="unable to open database file"):
            source.check()
    finally:
        source.close()
    assert not path.exists()
