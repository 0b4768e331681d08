"""A database's schema as discovery sees it: tables, columns, primary and foreign keys, and each
column's proposed data categories (classify.py) from its name, type and a bounded sample.

Read with SQLAlchemy's inspector, with its multi-table calls (a fixed number of catalog queries
whatever the number of tables, on PostgreSQL and MariaDB), from the URL's default schema. A
SQLite file is opened read-only and must exist: reading never creates or changes a database. The
sample is at most `sample_rows` rows per table, read a few tables at a time; the values go to
the classifier and no further: they are not kept, logged or returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import column as column_clause
from sqlalchemy import inspect, select
from sqlalchemy import table as table_clause
from sqlalchemy.engine import Engine
from sqlalchemy.engine.interfaces import (
    ReflectedColumn,
    ReflectedForeignKeyConstraint,
    ReflectedPrimaryKeyConstraint,
)
from sqlalchemy.exc import SQLAlchemyError

from datapolicy.discovery import DEFAULT_SAMPLE_ROWS
from datapolicy.discovery.classify import ColumnClass, classify_column
from datapolicy.engine.sources import sqltypes

SAMPLING_THREADS = 4  # connections reading samples at once


class DatabaseNotFound(Exception):
    """The SQLite file a URL names does not exist (a typo, most often): said, not created."""


@dataclass(frozen=True, slots=True)
class ForeignKey:
    """`table(columns) -> referred(referred_columns)`: one constraint, one or several columns."""

    table: str
    columns: tuple[str, ...]
    referred: str
    referred_columns: tuple[str, ...]

    def describe(self) -> str:
        return (
            f"{self.table}({', '.join(self.columns)}) -> "
            f"{self.referred}({', '.join(self.referred_columns)})"
        )


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    name: str
    sql_type: str
    nullable: bool
    classified: ColumnClass


@dataclass(slots=True)
class TableInfo:
    name: str
    columns: list[ColumnInfo]
    primary_key: tuple[str, ...]
    foreign_keys: list[ForeignKey]
    sample_error: str | None = None  # why no sample could be read (classified by name only)

    @property
    def personal_columns(self) -> list[ColumnInfo]:
        return [c for c in self.columns if c.classified.personal]

    @property
    def secret_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.classified.exclude]


@dataclass(slots=True)
class Schema:
    """Every table of the database's default schema, by name, and where each is referred to;
    `where` names that schema for a person (`schema 'public' of database 'shop'`)."""

    tables: dict[str, TableInfo]
    where: str = "the database"
    referring: dict[str, list[ForeignKey]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for table in self.tables.values():
            for key in table.foreign_keys:
                if key.referred in self.tables:
                    self.referring.setdefault(key.referred, []).append(key)


def read_schema(engine: Engine, sample_rows: int = DEFAULT_SAMPLE_ROWS) -> Schema:
    """The schema behind `engine`, each column classified on at most `sample_rows` values (none
    with `sample_rows` 0: by name and type only)."""
    inspector = inspect(engine)
    names = inspector.get_table_names()
    columns: dict[str, list[ReflectedColumn]]
    primary: dict[str, ReflectedPrimaryKeyConstraint]
    foreign: dict[str, list[ReflectedForeignKeyConstraint]]
    if engine.dialect.name == "sqlite":  # no multi-table catalog queries to gain from
        columns = {n: inspector.get_columns(n) for n in names}
        primary = {n: inspector.get_pk_constraint(n) for n in names}
        foreign = {n: inspector.get_foreign_keys(n) for n in names}
    else:
        columns = {key[1]: value for key, value in inspector.get_multi_columns().items()}
        primary = {key[1]: value for key, value in inspector.get_multi_pk_constraint().items()}
        foreign = {key[1]: value for key, value in inspector.get_multi_foreign_keys().items()}
    samples: dict[str, tuple[dict[str, list[Any]], str | None]] = {}
    if sample_rows > 0:
        with ThreadPoolExecutor(SAMPLING_THREADS) as pool:
            wanted = {n: [c["name"] for c in columns.get(n, [])] for n in names}
            read = pool.map(lambda n: (n, _sample(engine, n, wanted[n], sample_rows)), names)
            samples = dict(read)
    tables: dict[str, TableInfo] = {}
    for name in names:
        values, error = samples.pop(name, ({}, None))  # each table's values, then gone
        tables[name] = TableInfo(
            name=name,
            columns=[
                ColumnInfo(
                    name=c["name"],
                    sql_type=(sql_type := _type_name(c["type"], engine)),
                    nullable=bool(c.get("nullable", True)),
                    classified=classify_column(
                        name, c["name"], sql_type, values.get(c["name"], [])
                    ),
                )
                for c in columns.get(name, [])
            ],
            primary_key=tuple(primary[name]["constrained_columns"] if name in primary else ()),
            foreign_keys=_foreign_keys(name, foreign.get(name, []), inspector.default_schema_name),
            sample_error=error,
        )
    return Schema(tables, where=_where(engine, inspector.default_schema_name))


def read_referring(engine: Engine) -> dict[str, list[ForeignKey]]:
    """Every foreign key of the schema behind `engine`, by the table it refers to: what
    `read_schema(...).referring` holds, read without the columns, primary keys and their
    classification, which an erasure's checks do not need (one catalog query on PostgreSQL and
    MariaDB, however many tables the database has)."""
    inspector = inspect(engine)
    names = inspector.get_table_names()
    if engine.dialect.name == "sqlite":
        foreign = {n: inspector.get_foreign_keys(n) for n in names}
    else:
        foreign = {key[1]: value for key, value in inspector.get_multi_foreign_keys().items()}
    return Schema(
        {
            name: TableInfo(
                name,
                [],
                (),
                _foreign_keys(name, foreign.get(name, []), inspector.default_schema_name),
            )
            for name in names
        }
    ).referring


def _foreign_keys(
    name: str, reflected: list[ReflectedForeignKeyConstraint], default_schema: str | None
) -> list[ForeignKey]:
    """Table `name`'s foreign keys into its own schema (a key to another schema refers to no
    table discovery reads)."""
    return [
        ForeignKey(
            name,
            tuple(key["constrained_columns"]),
            key["referred_table"],
            tuple(key["referred_columns"]),
        )
        for key in reflected
        if key.get("referred_schema") in (None, default_schema) and key["constrained_columns"]
    ]


def _where(engine: Engine, schema: str | None) -> str:
    """The schema read, as the messages name it."""
    database = engine.url.database
    if engine.dialect.name == "sqlite":
        return f"the SQLite database {database}"
    if engine.dialect.name == "postgresql":
        return f"schema '{schema}' of database '{database}'"
    return f"database '{schema or database}'"


def _type_name(sql_type: Any, engine: Engine) -> str:
    try:
        return str(sql_type.compile(dialect=engine.dialect))
    except Exception:  # a type the dialect cannot spell back (NullType): its class is enough
        return type(sql_type).__name__


def _sample(
    engine: Engine, table: str, columns: Sequence[str], rows: int
) -> tuple[dict[str, list[Any]], str | None]:
    """Up to `rows` values of each column, or no values and why (the table is then classified
    by its names and types alone). The error names the table, never a value."""
    statement = select(*table_clause(table, *(column_clause(c) for c in columns)).c)
    try:
        with engine.connect() as connection:
            result = connection.execute(statement.limit(rows)).fetchall()
    except SQLAlchemyError as exc:
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return {}, cause[0][:200] if cause else type(exc).__name__
    return {name: [row[i] for row in result] for i, name in enumerate(columns)}, None


def open_engine(url: str) -> Engine:
    """An engine that reads values as the exports do (sqltypes.py): what is sampled is what
    would be exported. A SQLite file is opened read-only, after checking it exists, so that a
    mistyped path is named as such."""
    path = sqltypes.sqlite_file(url)
    if path is not None and not path.exists():
        raise DatabaseNotFound(
            f"no SQLite database at {path}: the file does not exist (nothing was created)"
        )
    return sqltypes.exporting_engine(url, sqlite_mode="ro")
