"""SQL sources: any SQLAlchemy URL (SQLite, PostgreSQL, MySQL/MariaDB).

Each configured table becomes one SELECT: tables reached from the user compare their key column
with the user id; tables reached from a parent keep the rows whose foreign key is among the
parent's selected keys, as a nested sub-select, so no keys are ever collected in memory and any
depth works. Rows are streamed with a server-side cursor where the driver has one, in batches of
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
from collections.abc import Iterator
from typing import Any

import orjson
import psycopg
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
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

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

_INTEGER = re.compile(r"^-?[0-9]+$")
# Column types whose PostgreSQL `to_json` text is the text `encode_rows` writes for the value
# psycopg reads (as `sqltypes` reads it). Not here: floats (PostgreSQL writes 1e+20, Python
# 1e20), json/jsonb (re-spelled in Python: jsonlines.json_document), bytea (hex, not base64),
# intervals, arrays.
_ENCODED_BY_DATABASE = (String, Integer, Boolean, Uuid, Numeric, Date, DateTime)
COPY_BATCH_BYTES = 1024 * 1024  # a COPY batch ends at this size, or at batch_size rows


class SqlSource(Source):
    kind = "sql"

    def __init__(self, config: SqlSourceConfig):
        super().__init__(config.name)
        self.config = config
        self.engine: Engine = sqltypes.exporting_engine(config.url, pool_pre_ping=True)
        self._tables: dict[str, Table] | None = None

    # --- configuration against the real schema --------------------------------------------

    def check(self) -> None:
        """Reflect every table and resolve every parent link, so that a mistake shows up on
        start rather than in the first export."""
        for config in self.config.tables:
            self._table_select(config)

    def _reflected(self) -> dict[str, Table]:
        if self._tables is None:
            metadata = sqltypes.reflecting_metadata()
            tables: dict[str, Table] = {}
            try:
                for config in self.config.tables:
                    table = Table(config.table, metadata, autoload_with=self.engine)
                    _require_columns(self.name, config, table)
                    tables[config.output_name] = table
            except NoSuchTableError as exc:
                raise SourceError(f"source '{self.name}': there is no table '{exc}'") from None
            except SQLAlchemyError as exc:
                raise self._error("cannot read the schema", exc) from None
            self._tables = tables
        return self._tables

    def _error(self, doing: str, exc: Exception) -> SourceError:
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300]
        where = self.engine.url.render_as_string(hide_password=True)
        return SourceError(f"source '{self.name}' ({where}): {doing}: {cause}")

    # --- statements ---------------------------------------------------------------------------

    def _condition(self, name: str) -> Any:
        """The WHERE clause that keeps the user's rows of the table called `name`."""
        config = next(t for t in self.config.tables if t.output_name == name)
        table = self._reflected()[name]
        if config.user_key is not None:
            column = table.c[config.user_key]
            return column == bindparam("user_id", type_=column.type)
        assert config.parent is not None
        parent = self._reflected()[config.parent]
        foreign_key, parent_key = _join_columns(self.name, config, table, parent)
        parent_keys = select(parent.c[parent_key]).where(self._condition(config.parent))
        return table.c[foreign_key].in_(parent_keys.scalar_subquery())

    def _columns(self, config: TableConfig) -> list[Column[Any]]:
        return [c for c in self._reflected()[config.output_name].c if c.name not in config.exclude]

    def _order(self, config: TableConfig) -> list[Column[Any]]:
        return (
            list(self._reflected()[config.output_name].primary_key.columns)
            or self._columns(config)[:1]
        )

    def _table_select(self, config: TableConfig) -> Select[Any]:
        statement = select(*self._columns(config)).where(self._condition(config.output_name))
        return statement.order_by(*self._order(config))

    def _json_select(self, config: TableConfig) -> Select[Any]:
        """The table's rows, in the same order, each as one line of JSON made by PostgreSQL.

        The object is spelled out column by column rather than made by `to_json(row)`: the
        database then formats only the values (integers and booleans as their text, the rest by
        `to_json`), which costs it about a third less CPU per row on narrow tables, and
        PostgreSQL's own CPU is what bounds this path (docs/benchmarks.md)."""
        line: Any = None
        for position, column in enumerate(self._columns(config)):
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
            .where(self._condition(config.output_name))
            .order_by(*self._order(config))
        )

    def _encoded_by_database(self, config: TableConfig) -> bool:
        return self.engine.dialect.name == "postgresql" and all(
            isinstance(column.type, _ENCODED_BY_DATABASE) and not isinstance(column.type, Float)
            for column in self._columns(config)
        )

    # --- reading -----------------------------------------------------------------------------

    def estimate(self, user_id: str) -> Estimate:
        total = 0
        try:
            with self.engine.connect() as connection:
                for config in self.config.tables:
                    statement = select(func.count()).select_from(
                        self._table_select(config).order_by(None).subquery()
                    )
                    total += connection.execute(
                        statement, self._typed(config, user_id)
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
        for config in self.config.tables:
            parameters = self._typed(config, user_id)
            if self._encoded_by_database(config):
                batches = self._copy_stream(self._json_select(config), parameters)
            else:
                batches = self._stream(self._table_select(config), parameters, ())
            yield RecordStream(config.output_name, batches)
        for query in self.config.queries:
            yield RecordStream(query.name, self._query_stream(query, user_id))

    def _query_stream(self, query: QueryConfig, user_id: str) -> Iterator[JsonLines]:
        return self._stream(text(query.sql), {"user_id": user_id}, query.exclude)

    def _typed(self, config: TableConfig, user_id: str) -> dict[str, Any]:
        """The user id as the type of the column it is compared with (an integer key, say)."""
        root = config
        while root.parent is not None:
            root = next(t for t in self.config.tables if t.output_name == root.parent)
        assert root.user_key is not None  # the root of every parent chain is reached by user_key
        column: Column[Any] = self._reflected()[root.output_name].c[root.user_key]
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


def _require_columns(source: str, config: TableConfig, table: Table) -> None:
    wanted = [config.user_key, config.foreign_key, *config.exclude]
    for name in wanted:
        if name is not None and name not in table.c:
            raise SourceError(f"source '{source}': table '{config.table}' has no column '{name}'")


def _join_columns(source: str, config: TableConfig, table: Table, parent: Table) -> tuple[str, str]:
    """(column in the table, column in the parent) that link a row to its parent row."""
    if config.foreign_key is not None:
        if config.parent_key is not None:
            if config.parent_key not in parent.c:
                raise SourceError(
                    f"source '{source}': table '{parent.name}' has no column '{config.parent_key}'"
                )
            return config.foreign_key, config.parent_key
        keys = list(parent.primary_key.columns)
        if len(keys) != 1:
            raise SourceError(
                f"source '{source}': table '{config.table}': set parent_key, "
                f"'{parent.name}' has no single-column primary key"
            )
        return config.foreign_key, keys[0].name
    links = [fk for fk in table.foreign_keys if fk.column.table.name == parent.name]
    if len(links) != 1:
        found = "no foreign key" if not links else "several foreign keys"
        raise SourceError(
            f"source '{source}': table '{config.table}' has {found} to '{parent.name}'; "
            "set foreign_key (and parent_key) in the configuration"
        )
    return links[0].parent.name, links[0].column.name
