"""SQL sources: any SQLAlchemy URL (SQLite, PostgreSQL, MySQL/MariaDB).

Each configured table becomes one SELECT: tables reached from the user compare their key column
with the user id; tables reached from a parent keep the rows whose foreign key (all its columns,
when it has several) is among the parent's selected keys, as a nested sub-select, so no keys are
ever collected in memory and any depth works. The tables are reflected at the start of every
export (`reflect`), so the statements follow the schema as it is, not as it was on start.
Rows are streamed with a server-side cursor where the driver has one, in batches of
`batch_size`. Excluded columns are never selected, so they never leave the database.

On PostgreSQL, a table whose columns are all of types that `to_json` writes exactly as Python
would (text, integers, booleans, UUIDs, decimals, dates and times: `_ENCODED_BY_DATABASE`) is
read by `COPY (SELECT <the row as JSON> ...) TO STDOUT` instead: the database encodes its rows and
they stream into the package as bytes, at the speed of PostgreSQL's own dump (docs/benchmarks.md),
with no Python object made per row. Every other table, and every query, is read through the
cursor and encoded by `jsonlines.encode_rows`; tests/engine pin that both paths write the same
bytes. How each database's column types are read, so that a value is written the same on every
database, is `sqltypes.py`'s job.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    Numeric,
    Select,
    String,
    Table,
    Text,
    Uuid,
    bindparam,
    cast,
    func,
    literal,
    select,
    text,
    tuple_,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import NoReferenceError, SQLAlchemyError
from sqlalchemy.schema import ForeignKeyConstraint
from sqlalchemy.sql.expression import ColumnElement, FromClause

from datapolicy.config import QueryConfig, SqlSourceConfig, TableConfig
from datapolicy.engine.sources import sqltypes
from datapolicy.engine.sources.base import (
    Estimate,
    Part,
    RecordStream,
    Source,
    SourceError,
)
from datapolicy.engine.sources.jsonlines import JsonLines, encode_rows
from datapolicy.engine.sources.sqlerrors import is_transient

_INTEGER = re.compile(r"^-?[0-9]+$")
# Column types whose PostgreSQL `to_json` text is the text `encode_rows` writes for the value
# psycopg reads (as `sqltypes` reads it). Not here: floats (PostgreSQL writes 1e+20, Python
# 1e20), json/jsonb (re-spelled in Python: jsonlines.json_document), bytea (hex, not base64),
# intervals, arrays.
_ENCODED_BY_DATABASE = (String, Integer, Boolean, Uuid, Numeric, Date, DateTime)
COPY_BATCH_BYTES = 1024 * 1024  # a COPY batch ends at this size, or at batch_size rows
# parts() reads with the schema that estimate() (the start of an export) reflected, if it is at
# most this old: one reflection per export, not two (see `reflect`).
SCHEMA_REUSE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Link:
    """How a child table's rows hang from its parent's: `foreign` columns of the child equal to
    `parent` columns of the parent, pairwise and all of them (one pair, or a composite key)."""

    foreign: tuple[str, ...]
    parent: tuple[str, ...]

    def describe(self, table: str, parent: str) -> str:
        return f"{table}({', '.join(self.foreign)}) -> {parent}({', '.join(self.parent)})"


@dataclass(frozen=True, slots=True)
class Schema:
    """The configured tables as the database had them when one export began, and each child
    table's link, checked against them. Each statement is built from one of these, never from
    two (a Table of one and a Table of another would be two FROMs: a cross join)."""

    tables: dict[str, Table]  # by output name
    links: dict[str, Link]  # by output name, for tables reached from a parent


class SqlSource(Source):
    kind = "sql"

    def __init__(self, config: SqlSourceConfig, clock: Callable[[], float] = time.monotonic):
        super().__init__(config.name)
        self.config = config
        self.engine: Engine = sqltypes.exporting_engine(config.url, pool_pre_ping=True)
        self._by_name = {table.output_name: table for table in config.tables}
        self._clock = clock
        self._latest: tuple[float, Schema] | None = None  # (when its reflection began, it)
        self._latest_lock = threading.Lock()

    # --- configuration against the real schema --------------------------------------------

    def check(self) -> None:
        """Reflect every table and resolve every parent link, so that a mistake shows up on
        start rather than in the first export."""
        self.reflect()

    def links(self) -> list[str]:
        """How each table reached from a parent is linked to it, as `config check` shows it:
        `child(columns) -> parent(columns)`, a composite key as one link."""
        schema = self.reflect()
        return [
            schema.links[config.output_name].describe(config.output_name, parent)
            for config in self.config.tables
            if (parent := config.parent) is not None
        ]

    def reflect(self) -> Schema:
        """The configured tables as they are now, read in one pass (SQLAlchemy reflects many
        tables with a fixed number of catalog queries): each export reads them again, so a
        column added while the service runs is exported and a dropped one is no longer asked
        for (docs/configuration.md, "Schema changes"). A table, column or link that the
        configuration names and the database lacks is a permanent error: no retry brings it.

        estimate() reflects afresh; parts() takes the newest reflection if it began at most
        SCHEMA_REUSE_SECONDS ago (`_recent`), which, as every export estimates first, is its
        own or a later one. Reflection costs a few milliseconds to a few tens (measured in
        docs/configuration.md): once per export, not once per read."""
        wanted = {config.table for config in self.config.tables}
        if not wanted:
            return Schema({}, {})
        began = self._clock()
        metadata = sqltypes.reflecting_metadata()
        try:
            metadata.reflect(
                self.engine, only=lambda name, _: name in wanted, views=True, resolve_fks=False
            )
        except SQLAlchemyError as exc:
            raise self._error("cannot read the schema", exc) from None
        tables: dict[str, Table] = {}
        for config in self.config.tables:
            table = metadata.tables.get(config.table)
            if table is None:
                raise self._refused(f"there is no table '{config.table}'")
            tables[config.output_name] = table
            for name, role in [
                (config.user_key, "user_key"),
                *((name, "foreign_key") for name in config.foreign_key or ()),
                *((name, "exclude") for name in config.exclude),
                *((name, "columns") for name in config.columns),
            ]:
                if name is not None and name not in table.c:
                    raise self._refused(
                        f"table '{config.table}' has no column '{name}' (named by {role}); "
                        "correct the configuration, or restore the column"
                    )
        links = {
            config.output_name: self._link(config, tables[config.output_name], tables[parent])
            for config in self.config.tables
            if (parent := config.parent) is not None
        }
        schema = Schema(tables, links)
        with self._latest_lock:
            if self._latest is None or self._latest[0] <= began:
                self._latest = (began, schema)
        return schema

    def _recent(self) -> Schema:
        """The newest reflection if it began at most SCHEMA_REUSE_SECONDS ago, else a new one."""
        latest = self._latest
        if latest is not None and self._clock() - latest[0] <= SCHEMA_REUSE_SECONDS:
            return latest[1]
        return self.reflect()

    def _link(self, config: TableConfig, table: Table, parent: Table) -> Link:
        """The columns that link a row of `table` to its row in `parent`: as configured, else
        the one foreign key (of one or several columns) from `table` to `parent`."""
        if config.foreign_key is not None:
            parent_key = config.parent_key or tuple(c.name for c in parent.primary_key.columns)
            if len(parent_key) != len(config.foreign_key):
                raise self._refused(
                    f"table '{config.table}': set parent_key, as foreign_key names "
                    f"{len(config.foreign_key)} column(s) and the primary key of "
                    f"'{parent.name}' has {len(parent_key)}"
                )
            for name in parent_key:
                if name not in parent.c:
                    raise self._refused(
                        f"table '{parent.name}' has no column '{name}' (named by parent_key of "
                        f"'{config.table}'); correct the configuration, or restore the column"
                    )
            return Link(config.foreign_key, parent_key)
        if table is parent:
            raise self._refused(
                f"table '{config.table}' is reached from itself: set foreign_key (and "
                "parent_key), so that which way its link is followed (to the rows that refer to "
                "the parent's rows, or to those they refer to) is chosen, not guessed"
            )
        found = [c for c in table.foreign_key_constraints if _refers_to(c, parent)]
        if len(found) != 1:
            links = [Link(tuple(c.column_keys), _referred_columns(c)) for c in found]
            named = "; ".join(link.describe(table.name, parent.name) for link in links)
            several = f"{len(found)} foreign keys to '{parent.name}' ({named})"
            raise self._refused(
                f"table '{config.table}' has "
                f"{several if found else f'no foreign key to {parent.name!r}'}; "
                "set foreign_key (and parent_key) in the configuration"
            )
        return Link(tuple(found[0].column_keys), _referred_columns(found[0]))

    def _error(self, doing: str, exc: Exception) -> SourceError:
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300]
        where = self.engine.url.render_as_string(hide_password=True)
        if is_transient(exc):
            return SourceError(f"source '{self.name}' ({where}): {doing}: {cause}")
        return SourceError(
            f"source '{self.name}' ({where}): {doing}: {cause} (not retried: the database "
            "refused the statement; correct the configuration or the database)",
            permanent=True,
        )

    def _refused(self, message: str) -> SourceError:
        """The configuration does not match the database: permanent."""
        return SourceError(f"source '{self.name}': {message}", permanent=True)

    # --- statements ---------------------------------------------------------------------------

    def condition(self, name: str, schema: Schema, table: FromClause) -> ColumnElement[bool]:
        """The WHERE clause that keeps the user's rows of `table`, the table called `name`.

        A table reached from a parent keeps the rows whose link columns, all of them, equal the
        parent key of one of the parent's kept rows: `fk IN (SELECT key ...)`, or for a
        composite key `(fk1, fk2) IN (SELECT key1, key2 ...)` (row values: SQLite 3.15+,
        PostgreSQL, MariaDB). A NULL in any link column matches nothing. Every parent is read
        through an alias of its own, so a table below itself (a self-reference, or one table
        on two levels) is never correlated with the outer query."""
        config = self._by_name[name]
        if config.user_key is not None:
            column = table.c[config.user_key]
            user_id = bindparam("user_id", type_=column.type)
            return sqltypes.exactly_equal(column, user_id, self.engine.dialect)
        assert config.parent is not None
        parent = schema.tables[config.parent].alias()
        link = schema.links[name]
        keys = select(*(parent.c[key] for key in link.parent)).where(
            self.condition(config.parent, schema, parent)
        )
        if len(link.foreign) == 1:
            return table.c[link.foreign[0]].in_(keys.scalar_subquery())
        return tuple_(*(table.c[column] for column in link.foreign)).in_(keys)

    def _kept(self, config: TableConfig, schema: Schema) -> ColumnElement[bool]:
        """The WHERE clause of the configured table's own SELECT."""
        return self.condition(config.output_name, schema, schema.tables[config.output_name])

    def _columns(self, config: TableConfig, schema: Schema) -> list[Column[Any]]:
        return [c for c in schema.tables[config.output_name].c if c.name not in config.exclude]

    def _order(self, config: TableConfig, schema: Schema) -> list[Column[Any]]:
        return (
            list(schema.tables[config.output_name].primary_key.columns)
            or self._columns(config, schema)[:1]
        )

    def _table_select(self, config: TableConfig, schema: Schema) -> Select[Any]:
        statement = select(*self._columns(config, schema)).where(self._kept(config, schema))
        return statement.order_by(*self._order(config, schema))

    def _json_select(self, config: TableConfig, schema: Schema) -> Select[Any]:
        """The table's rows, in the same order, each as one line of JSON made by PostgreSQL.

        The object is spelled out column by column rather than made by `to_json(row)`: the
        database then formats only the values (integers and booleans as their text, the rest by
        `to_json`), which costs it about a third less CPU per row on narrow tables, and
        PostgreSQL's own CPU is what bounds this path (docs/benchmarks.md)."""
        line: Any = None
        for position, column in enumerate(self._columns(config, schema)):
            key = ("{" if position == 0 else ",") + orjson.dumps(column.name).decode() + ":"
            if isinstance(column.type, Integer | Boolean):
                value: Any = cast(column, Text)
            else:
                value = cast(func.to_json(column), Text)
            if column.nullable:
                value = func.coalesce(value, literal("null", Text))
            part = literal(key, Text) + value
            line = part if line is None else line + part
        return (
            select(line + literal("}", Text))
            .where(self._kept(config, schema))
            .order_by(*self._order(config, schema))
        )

    def _encoded_by_database(self, config: TableConfig, schema: Schema) -> bool:
        return self.engine.dialect.name == "postgresql" and all(
            isinstance(column.type, _ENCODED_BY_DATABASE) and not isinstance(column.type, Float)
            for column in self._columns(config, schema)
        )

    # --- reading -----------------------------------------------------------------------------

    def estimate(self, user_id: str) -> Estimate:
        total = 0
        schema = self.reflect()
        try:
            with self.engine.connect() as connection:
                for config in self.config.tables:
                    statement = select(func.count()).select_from(
                        self._table_select(config, schema).order_by(None).subquery()
                    )
                    total += connection.execute(
                        statement, self.parameters(config, user_id, schema)
                    ).scalar_one()
                for query in self.config.queries:
                    statement = select(func.count()).select_from(
                        text(query.sql).columns().subquery("q")
                    )
                    total += connection.execute(statement, {"user_id": user_id}).scalar_one()
        except SQLAlchemyError as exc:
            raise self._error("cannot count the user's rows", exc) from None
        return Estimate(records=total)

    def parts(self, user_id: str) -> Iterator[Part]:
        schema = self._recent()
        for config in self.config.tables:
            parameters = self.parameters(config, user_id, schema)
            if self._encoded_by_database(config, schema):
                batches = self._copy_stream(self._json_select(config, schema), parameters)
            else:
                batches = self._stream(self._table_select(config, schema), parameters, ())
            yield RecordStream(config.output_name, batches)
        for query in self.config.queries:
            yield RecordStream(query.name, self._query_stream(query, user_id))

    def _query_stream(self, query: QueryConfig, user_id: str) -> Iterator[JsonLines]:
        return self._stream(text(query.sql), {"user_id": user_id}, query.exclude)

    def parameters(self, config: TableConfig, user_id: str, schema: Schema) -> dict[str, Any]:
        """The user id as the type of the column it is compared with (an integer key, say)."""
        root = config
        while root.parent is not None:
            root = self._by_name[root.parent]
        assert root.user_key is not None  # the root of every parent chain is reached by user_key
        column: Column[Any] = schema.tables[root.output_name].c[root.user_key]
        try:
            python_type = column.type.python_type
        except NotImplementedError:
            return {"user_id": user_id}
        if python_type is int:
            # Strict: int() would also read " 2", "02" and "1_0" as numbers, and a loose id
            # must never select someone else's rows.
            if _INTEGER.match(user_id) and str(int(user_id)) == user_id:
                return {"user_id": int(user_id)}
            return {"user_id": None}  # no integer key equals a non-numeric id
        return {"user_id": user_id}

    def _stream(
        self, statement: Any, parameters: dict[str, Any], exclude: tuple[str, ...]
    ) -> Iterator[JsonLines]:
        size = self.config.batch_size
        try:
            with self.engine.connect() as connection:
                _plan_for_every_row(connection)
                result = connection.execution_options(stream_results=True, yield_per=size).execute(
                    statement, parameters
                )
                # Rows become dicts by zipping the names, looked up once, with each row: about
                # five times faster than dict(RowMapping), and the same dicts (a repeated name
                # keeps its last value). The names are made plain str: SQLAlchemy's are a str
                # subclass that the cyclic GC tracks, which made it track every row's dict too.
                names = tuple(map(str, result.keys()))
                kept = [i for i, name in enumerate(names) if name not in exclude]
                if len(kept) == len(names):
                    for partition in result.partitions(size):
                        yield encode_rows(dict(zip(names, row, strict=True)) for row in partition)
                else:
                    kept_names = [names[i] for i in kept]
                    for partition in result.partitions(size):
                        yield encode_rows(
                            dict(zip(kept_names, [row[i] for i in kept], strict=True))
                            for row in partition
                        )
        except SQLAlchemyError as exc:
            raise self._error("cannot read the user's rows", exc) from None

    def _copy_stream(
        self, statement: Select[Any], parameters: dict[str, Any]
    ) -> Iterator[JsonLines]:
        """PostgreSQL's own JSON of each row, by COPY: one line per row, batched by size.

        CSV format with a quote and a delimiter that JSON text never holds raw (`to_json`
        escapes every control character) passes each line through untouched; COPY's text
        format would double every backslash."""
        import psycopg  # the PostgreSQL path only: no other source loads it (pgloaders.py)

        compiled = statement.compile(dialect=self.engine.dialect)
        copy = f"COPY ({compiled}) TO STDOUT WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
        limit = self.config.batch_size
        try:
            with self.engine.connect() as connection:
                _plan_for_every_row(connection)
                connection.exec_driver_sql("SET LOCAL client_encoding = 'UTF8'")
                driver = connection.connection.driver_connection
                finished = False
                try:
                    # A psycopg connection: SQLAlchemy types the driver's as a DB-API one or None.
                    with (
                        driver.cursor() as cursor,  # type: ignore[union-attr]
                        cursor.copy(copy, compiled.construct_params(parameters)) as rows,
                    ):
                        buffer, messages = bytearray(), 0
                        for chunk in rows:
                            buffer += chunk
                            messages += 1
                            if messages >= limit or len(buffer) >= COPY_BATCH_BYTES:
                                yield JsonLines(bytes(buffer), buffer.count(b"\n"))
                                buffer, messages = bytearray(), 0
                        if buffer:
                            yield JsonLines(bytes(buffer), buffer.count(b"\n"))
                    finished = True
                finally:
                    if not finished:
                        # Left mid-COPY (cancelled, or the package could not be written): the
                        # connection is still in COPY mode, so it is closed, not pooled.
                        connection.invalidate()
        except (SQLAlchemyError, psycopg.Error) as exc:
            raise self._error("cannot read the user's rows", exc) from None

    def close(self) -> None:
        self.engine.dispose()


def _plan_for_every_row(connection: Connection) -> None:
    """PostgreSQL plans a cursor for fetching its first tenth quickly (index probes in a nested
    loop, say); an export reads every row, so plan for the whole result. LOCAL: it ends with
    this read's transaction."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL cursor_tuple_fraction = 1.0")


def _refers_to(constraint: ForeignKeyConstraint, table: Table) -> bool:
    """Whether the foreign key refers to `table` (a key to a table that was not reflected, which
    cannot be resolved, refers to none of the configured ones)."""
    try:
        return constraint.referred_table is table
    except NoReferenceError:
        return False


def _referred_columns(constraint: ForeignKeyConstraint) -> tuple[str, ...]:
    """The referred columns, in the order of the constraint's own."""
    return tuple(element.column.name for element in constraint.elements)
