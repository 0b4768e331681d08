"""How a SQL source reads each column type, so that a value is written the same on every database.

SQLAlchemy's reflected types are made for applications, and some of them change values on the
way out: MySQL/MariaDB `DOUBLE` is reflected as a decimal rounded to 10 places (`1.5e-12` read as
`0E-10`), `TIME` (a duration there, up to 838 hours) is wrapped into a time of day, `SET` becomes
an unordered Python set, `BIT` a number; MariaDB's `JSON` (a `LONGTEXT` with a `json_valid`
check) is plain text and `BOOLEAN` (`TINYINT(1)`) a number; on SQLite, where a column holds
whatever was stored, `NUMERIC` is rounded to 10 places and a date or time that is not in
SQLAlchemy's own format stops the export. `reflecting_metadata` swaps those types, as each
column is reflected, for ones that read the driver's value as it is (`_Exact` and its
subclasses below). PostgreSQL's reflected types are left alone (its COPY path, `sql.py`, picks
tables by them); there psycopg's loaders are wrapped instead (pgloaders.py). `exporting_engine`
sets every connection up so that no server setting changes a value. Dates and times come out
as PostgreSQL's `to_json` writes them, so that both PostgreSQL paths and every database agree.
The JSON each value becomes is `jsonlines`'s job; the table of what every type becomes is in
docs/package-format.md.

Comparing is the same everywhere too: `exactly_equal` makes a person's id match only the id
that is that person's, byte for byte, on MySQL/MariaDB as on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, date, datetime, time
from decimal import Context, Decimal
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Time,
    and_,
    cast,
    create_engine,
    event,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Dialect, Engine, Inspector, make_url
from sqlalchemy.engine.interfaces import ReflectedColumn
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.types import NullType, TypeDecorator, TypeEngine

from datapolicy.engine.sources.jsonlines import datetime_value, iso8601, json_document

# MariaDB declares a JSON column as `LONGTEXT ... CHECK (json_valid(`name`))`.
_JSON_VALID = re.compile(r"json_valid\(`((?:[^`]|``)+)`\)", re.IGNORECASE)
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def exactly_equal(column: Any, parameter: Any, dialect: Dialect) -> ColumnElement[bool]:
    """`column = parameter`, and on MySQL/MariaDB for text also byte for byte: their default
    collations (`utf8mb4_general_ci`, every `PAD SPACE` one) compare without case or accents
    and ignore trailing spaces, so the id `ADA` or `ada ` would select `ada`'s rows. The plain
    equality stays, so that an index on the column still finds the candidates."""
    equal: ColumnElement[bool] = column == parameter
    if dialect.name in ("mysql", "mariadb") and isinstance(column.type, String):
        return and_(equal, cast(column, LargeBinary) == cast(parameter, LargeBinary))
    return equal


def reflecting_metadata() -> MetaData:
    """A MetaData whose reflected tables read every column exactly (see the module)."""
    metadata = MetaData()
    event.listen(metadata, "column_reflect", _exact_type)
    return metadata


def exporting_engine(url: str, *, sqlite_mode: str = "rw", **options: Any) -> Engine:
    """An engine for `url` whose JSON columns (PostgreSQL json/jsonb, MySQL/MariaDB and SQLite
    JSON) are read into `jsonlines.json_document`'s one spelling, and whose every new
    connection is set up so that a value is read the same whatever the server's defaults:
    times with zones in UTC (PostgreSQL `TimeZone`, MariaDB `time_zone`); on PostgreSQL,
    intervals as ISO 8601 text (`P1Y2M3DT4H`: psycopg would read a month as 30 days, and the
    COPY path would follow the server's `IntervalStyle`), times of day as text and dates Python
    cannot hold as PostgreSQL's text (pgloaders.py). A SQLite file is opened in `sqlite_mode`
    (`rw`, or `ro` to only read), never created: SQLite would otherwise make an empty database
    at a mistyped path, in which every export then finds nothing. A `file:` URI keeps its own
    mode, as written."""
    path = sqlite_file(url)
    if path is not None:
        uri = f"{path.absolute().as_uri()}?mode={sqlite_mode}"
        options.setdefault(
            "creator", partial(sqlite3.connect, uri, uri=True, check_same_thread=False)
        )
    engine = create_engine(url, json_deserializer=json_document, **options)
    name = engine.dialect.name
    if name == "postgresql":
        # Imported here: psycopg (0.05 s of CPU) is for PostgreSQL sources only.
        from datapolicy.engine.sources.pgloaders import set_up_postgresql

        event.listen(engine, "connect", set_up_postgresql)
    elif name in ("mysql", "mariadb"):
        event.listen(engine, "connect", _set_up_mysql)
    return engine


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names; None for other databases, for memory and for a `file:`
    URI (which keeps its own mode)."""
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    return None if database.startswith("file:") else Path(database)


def _set_up_mysql(dbapi_connection: Any, _record: Any) -> None:
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET time_zone = '+00:00'")


# --- the reflection hook -------------------------------------------------------------------------


def _exact_type(inspector: Inspector, table: Table, column: ReflectedColumn) -> None:
    """column_reflect: replace a reflected type that would change values (see the module)."""
    dialect = inspector.dialect.name
    reflected = column["type"]
    if isinstance(reflected, Float):
        reflected.asdecimal = False  # MySQL DOUBLE/REAL: a float, not a 10-place decimal
        return
    exact: TypeEngine[Any] | None = None
    if dialect == "sqlite":
        exact = _sqlite_type(reflected)
    elif dialect in ("mysql", "mariadb"):
        exact = _mysql_type(inspector, table, column["name"], reflected)
    if exact is not None:
        column["type"] = exact


def _sqlite_type(reflected: TypeEngine[Any]) -> TypeEngine[Any] | None:
    """SQLite holds any value in any column: read it as stored, shaped by the declared type
    only where the stored value fits it."""
    if isinstance(reflected, Boolean):
        return Flag()
    if isinstance(reflected, Numeric):
        return SqliteDecimal(reflected.scale)
    if isinstance(reflected, JSON):
        return JsonText()
    if isinstance(reflected, DateTime):
        return SqliteTimestamp()
    if isinstance(reflected, Date):
        return SqliteDate()
    if isinstance(reflected, Time):
        return SqliteTime()
    return None


def _mysql_type(
    inspector: Inspector, table: Table, name: str, reflected: TypeEngine[Any]
) -> TypeEngine[Any] | None:
    if isinstance(reflected, mysql.TINYINT) and reflected.display_width == 1:
        return Flag()  # BOOLEAN is TINYINT(1) in MySQL and MariaDB
    if isinstance(reflected, mysql.TIME):
        return _Exact()  # a duration: jsonlines writes the driver's timedelta as [-]HH:MM:SS
    if isinstance(reflected, mysql.TIMESTAMP):
        return UtcTimestamp()
    if isinstance(reflected, DateTime):
        return Timestamp()
    if isinstance(reflected, mysql.SET):
        return MysqlSet()
    if isinstance(reflected, mysql.BIT):
        return Bits(reflected.length or 1)
    if isinstance(reflected, JSON) or name in _mariadb_json_columns(inspector, table):
        return JsonText()
    return None


def _mariadb_json_columns(inspector: Inspector, table: Table) -> frozenset[str]:
    """The columns MariaDB declared as JSON (its alias for LONGTEXT with a json_valid check),
    asked once per table and reflection."""
    if not getattr(inspector.dialect, "is_mariadb", False):
        return frozenset()
    key = ("datapolicy.json_columns", table.schema, table.name)
    if key not in inspector.info_cache:
        query = text(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = COALESCE(:schema, DATABASE()) AND TABLE_NAME = :table"
        )
        parameters = {"schema": table.schema, "table": table.name}
        bind = inspector.bind
        if isinstance(bind, Connection):
            clauses = bind.execute(query, parameters).scalars().all()
        else:
            with bind.connect() as connection:
                clauses = connection.execute(query, parameters).scalars().all()
        inspector.info_cache[key] = frozenset(
            match.replace("``", "`") for clause in clauses for match in _JSON_VALID.findall(clause)
        )
    found: frozenset[str] = inspector.info_cache[key]
    return found


# --- the exact types ------------------------------------------------------------------------------


class _Exact(TypeDecorator[Any]):
    """The driver's value, untouched: no SQLAlchemy conversion in either direction."""

    impl: type[TypeEngine[Any]] = NullType  # Flag binds as an Integer
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return value


class Flag(_Exact):
    """A boolean stored as a number (MySQL/MariaDB TINYINT(1), SQLite): 0 and 1 are false and
    true; any other number a column of that type holds is written as the number, never
    squashed into `true`. Bound as an integer, so a user id compared with one is too."""

    impl = Integer
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is True or value is False:
            return value
        if type(value) is int and value in (0, 1):
            return value == 1
        return value


class JsonText(_Exact):
    """JSON stored as text (MariaDB, SQLite): the document in jsonlines' one spelling, or its
    text if it is not JSON (SQLite checks nothing). SQLite gives a JSON column NUMERIC
    affinity, so a document that is a bare number may be stored as an SQLite number (`1.0` as
    1, integers past 2**63 as a float): it is written as the number stored."""

    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, float):
            value = repr(value)
        return json_document(value) if isinstance(value, str) else value


class Timestamp(_Exact):
    """MySQL/MariaDB DATETIME, spelled as PostgreSQL writes it (`jsonlines.datetime_value`)."""

    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return datetime_value(value) if isinstance(value, datetime) else value


class UtcTimestamp(_Exact):
    """MySQL/MariaDB TIMESTAMP: an instant, read in the session's UTC (`exporting_engine`)."""

    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, datetime):
            return datetime_value(value.replace(tzinfo=UTC))
        return value  # a zero date, which the driver leaves as text


class MysqlSet(_Exact):
    """MySQL/MariaDB SET: its members as a list, in the order of the type's definition (the
    order the database writes them in; members cannot hold a comma)."""

    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, str):
            return value.split(",") if value else []
        return value


class Bits(_Exact):
    """MySQL/MariaDB BIT(n): its bits as text, `n` of them, as PostgreSQL writes `bit(n)`."""

    cache_ok = True

    def __init__(self, length: int):
        super().__init__()
        self.length = length

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, bytes):
            return format(int.from_bytes(value, "big"), f"0{self.length}b")
        return value


class SqliteDecimal(_Exact):
    """SQLite NUMERIC/DECIMAL: what is stored (an integer, a float or text) as a decimal with
    all its digits, padded to the declared scale as the other databases write it."""

    cache_ok = True

    def __init__(self, scale: int | None):
        super().__init__()
        self.scale = scale

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, float):
            number = Decimal(repr(value))  # the shortest decimal that is this float
        elif type(value) is int or (isinstance(value, str) and _DECIMAL.fullmatch(value)):
            number = Decimal(value)
        else:
            return value
        exponent = number.as_tuple().exponent
        if self.scale is not None and isinstance(exponent, int) and exponent > -self.scale:
            digits = max(number.adjusted(), 0) + 1 + self.scale
            number = number.quantize(Decimal(1).scaleb(-self.scale), context=Context(prec=digits))
        return number


class SqliteTimestamp(_Exact):
    """SQLite DATETIME/TIMESTAMP text in any ISO 8601 spelling (a space or `T`, an offset or
    `Z`), as the other databases write it: naive as it is, with a zone in UTC. Other values are
    written as stored."""

    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                return value
            return iso8601(moment.astimezone(UTC) if moment.tzinfo is not None else moment)
        return value


class SqliteDate(_Exact):
    """SQLite DATE text in ISO 8601, as the other databases write it; other values as stored."""

    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                return value
        return value


class SqliteTime(_Exact):
    """SQLite TIME text in ISO 8601 (`12:00:01`, with its offset if it has one), as the other
    databases write it; other values as stored. As text, not a `time`: see `_TimeText`."""

    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, str):
            try:
                return iso8601(time.fromisoformat(value))
            except ValueError:
                return value
        return value
