"""SQL sources: any SQLAlchemy URL (SQLite, PostgreSQL, MySQL/MariaDB).

Each configured table becomes one SELECT: tables reached from the user compare their key column
with the user id; tables reached from a parent keep the rows whose foreign key is among the
parent's selected keys, as a nested sub-select, so no keys are ever collected in memory and any
depth works. Rows are streamed with a server-side cursor where the driver has one, in batches of
`batch_size`. Excluded columns are never selected, so they never leave the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import (
    Column,
    MetaData,
    Select,
    Table,
    bindparam,
    create_engine,
    func,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

from datapolicy.config import QueryConfig, SqlSourceConfig, TableConfig
from datapolicy.engine.sources.base import (
    Estimate,
    Part,
    RecordStream,
    Source,
    SourceError,
)

_INTEGER = re.compile(r"^-?[0-9]+$")


class SqlSource(Source):
    kind = "sql"

    def __init__(self, config: SqlSourceConfig):
        super().__init__(config.name)
        self.config = config
        self.engine: Engine = create_engine(config.url, pool_pre_ping=True)
        self._tables: dict[str, Table] | None = None

    # --- configuration against the real schema --------------------------------------------

    def check(self) -> None:
        """Reflect every table and resolve every parent link, so that a mistake shows up on
        start rather than in the first export."""
        for config in self.config.tables:
            self._table_select(config)

    def _reflected(self) -> dict[str, Table]:
        if self._tables is None:
            metadata = MetaData()
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

    def _error(self, doing: str, exc: SQLAlchemyError) -> SourceError:
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

    def _table_select(self, config: TableConfig) -> Select[Any]:
        table = self._reflected()[config.output_name]
        columns = [c for c in table.c if c.name not in config.exclude]
        statement = select(*columns).where(self._condition(config.output_name))
        order = list(table.primary_key.columns) or columns[:1]
        return statement.order_by(*order)

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
            yield RecordStream(
                config.output_name,
                self._stream(self._table_select(config), self._typed(config, user_id), ()),
            )
        for query in self.config.queries:
            yield RecordStream(query.name, self._query_stream(query, user_id))

    def _query_stream(self, query: QueryConfig, user_id: str) -> Iterator[list[Mapping[str, Any]]]:
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
    ) -> Iterator[list[Mapping[str, Any]]]:
        size = self.config.batch_size
        try:
            with self.engine.connect() as connection:
                result = connection.execution_options(stream_results=True, yield_per=size).execute(
                    statement, parameters
                )
                if exclude:
                    for partition in result.mappings().partitions(size):
                        yield [
                            {k: v for k, v in row.items() if k not in exclude} for row in partition
                        ]
                else:
                    # The same dicts as dict(RowMapping) (a repeated name keeps its last value),
                    # about five times faster: the keys are looked up once, not per row.
                    keys = tuple(result.keys())
                    for partition in result.partitions(size):
                        yield [dict(zip(keys, row, strict=True)) for row in partition]
        except SQLAlchemyError as exc:
            raise self._error("cannot read the user's rows", exc) from None

    def close(self) -> None:
        self.engine.dispose()


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
