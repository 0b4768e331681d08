"""Erasing a person from one SQL source, in one transaction.

The rows are the export's: each configured table's rows are picked by `SqlSource.condition`, the
one selection that exports read with (composite links, self-references and all). Because a
table's selection is a sub-select over its parent's rows, deleting a parent's rows first would
change which of a child's rows are selected; so, inside the source's one transaction:

1. Order: the tables to delete from, children before parents (by the database's foreign keys
   and by the configuration's `parent` links).
2. Plan: where every path binds the same user-id parameter, a table whose selection reads no
   table deleted from before it (nor itself) is deleted set-based later, `DELETE ... WHERE <its
   selection>`, which is then exact, and masked tables are read a page at a time when masked
   (masks change no column a selection reads); every other table to delete (self-references,
   a table reached by paths through tables deleted first) has its selection read now, by
   primary key, before anything changes, and kept. A table reached by several paths is the
   union of its paths' rows.
3. Check: every foreign key that refers to a table whose rows are to be deleted (read from the
   whole database: `discovery.schema.read_referring`) is followed back; a referring row that is
   not itself to be deleted would block the delete, or be deleted or changed by it (ON DELETE
   CASCADE / SET NULL): the erasure is refused, naming the key, and nothing changes. So no
   other person's row is ever touched. (One COUNT per key, in the database, none for a key
   the configuration follows from every path to the table, whose referring rows are then
   selected and deleted too; by the planned keys where the paths bind differently typed user
   ids.)
4. Apply: masks (UPDATE of the cells whose value changes, by primary key, a page of rows at a
   time), then deletes in the order of 1, set-based (the selection's keys streamed first by a
   server-side cursor, then one DELETE, whose count must match) or by primary key in batches
   of `KEY_BATCH`. The keys of the rows deleted and masked go to the caller's `keys`, a batch
   at a time, for the receipt (engine/erasure/receipt.py hashes them); for a set-based delete
   on MySQL/MariaDB of a table keyed by integers, their hashes instead, computed by the
   database (`HashedKeys`), so that no key is hashed in Python. On MySQL/MariaDB, which
   checks a foreign key row by row, the rows of a table that refers to itself have their
   self-references set to NULL first (where the columns allow it).
5. Commit; or, for a dry run, roll back: a dry run runs the same statements and shows what
   changed, and the database keeps nothing of it.

A table with rule `delete` or `mask` needs a primary key (how else to name the rows it
changes); a mask on a key column (primary key, `user_key`, a link's columns, a foreign key's
columns on either side) is refused: it would change which rows are whose. Retained tables are
counted and left alone. Memory is a page of rows, but for the tables whose keys are planned
(2.), a key per row. The caller's `advanced` is called as each table is done (applied,
or counted for a retained one): progress moves per table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import (
    Select,
    Table,
    and_,
    bindparam,
    case,
    column,
    func,
    inspect,
    null,
    or_,
    select,
    table,
    tuple_,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.expression import BindParameter, ColumnElement

from datapolicy.config import MaskStrategy, MaskValue, TableConfig
from datapolicy.engine.erasure.masks import HASH_LENGTH, Masker
from datapolicy.engine.sources.base import SourceError
from datapolicy.engine.sources.sql import Link, Schema, SqlSource

if TYPE_CHECKING:
    from datapolicy.discovery.schema import ForeignKey

KEY_BATCH = 500  # rows per DELETE/UPDATE statement (bound parameters stay under every limit)
PAGE = 5000  # rows read at a time where rows go through Python (masks, the keys for the receipt)

Change = Callable[[str, dict[str, Any]], None]  # (table, what would change): a dry run's detail
Keys = Callable[[str, Sequence[Sequence[Any]]], None]  # (table, keys of rows changed): a batch


class HashedKeys(Protocol):
    """The receipt's key hashes where the database computes them (receipt.py `KeyHashes`)."""

    def in_sql(
        self, source: str, table: str, key: Sequence[ColumnElement[Any]], dialect: str
    ) -> ColumnElement[str] | None:
        """A row's hash in SQL, from its key's columns; None where the database cannot."""
        ...

    def add_lines(self, source: str, table: str, lines: bytes) -> None:
        """Take hashes the database computed, a hex hash and a newline each."""
        ...


@dataclass(slots=True)
class TableResult:
    """What the erasure did (or, in a dry run, would do) to one database table."""

    source: str
    table: str
    rule: str  # delete, mask or retain
    reason: str | None = None  # retain's stated reason
    rows: int = 0  # rows deleted, masked (at least one cell changed) or retained
    cells: int = 0  # masked cells whose value changed
    key: tuple[str, ...] = ()  # the primary key's columns

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "table": self.table,
            "rule": self.rule,
            "reason": self.reason,
            "rows": self.rows,
            "cells": self.cells,
        }


@dataclass(slots=True)
class _Plan:
    config: TableConfig  # the table's rule (every path of one table has the same)
    table: Table
    key: tuple[str, ...]
    rows: dict[tuple[Any, ...], tuple[Any, ...]] = field(default_factory=dict)  # key: masked


class SqlEraser:
    """Erases one person from one SQL source: `erase` is the whole of it."""

    def __init__(self, source: SqlSource):
        self.source = source
        self.name = source.name

    # --- checks that need the database ------------------------------------------------------

    def problems(self) -> list[str]:
        """What in the rules the database refuses, each explained (empty: none): a rule on a
        table without a primary key, a mask on a key column or on a column that cannot hold
        its result, and a table to delete from that a foreign key from a table this source
        does not configure refers to. `config check` shows them; `erase` refuses with them."""
        schema = self.source.reflect()
        return self._problems(schema, self._referring() if self._deletes() else {})

    def _problems(self, schema: Schema, referring: dict[str, list[ForeignKey]]) -> list[str]:
        found: list[str] = []
        configured = {config.table for config in self.source.config.tables}
        for config, physical in self._tables(schema):
            rule = config.erase
            if rule in ("delete", "mask") and not physical.primary_key.columns:
                found.append(
                    f"table '{config.table}' has no primary key: erase = \"{rule}\" needs one "
                    'to name the rows it changes (use "retain", or add a primary key)'
                )
            if rule == "mask":
                keys = self._key_columns(config.table, schema, referring)
                for name, strategy in config.mask.items():
                    found += self._mask_problems(config.table, physical, name, strategy, keys)
            if rule == "delete":
                for key in referring.get(config.table, []):
                    if key.table not in configured:
                        found.append(
                            f"table '{config.table}' is erased by delete, but table "
                            f"'{key.table}', which this source does not configure, refers to it "
                            f"({key.describe()}): its rows would block the delete, or be "
                            "deleted or changed with it (ON DELETE CASCADE / SET NULL). "
                            f"Configure '{key.table}' (reached from '{config.output_name}', "
                            "with a rule), or retain this table"
                        )
        return found

    def _mask_problems(
        self,
        name: str,
        physical: Table,
        column_name: str,
        strategy: MaskStrategy | MaskValue,
        keys: set[str],
    ) -> list[str]:
        if column_name not in physical.c:
            return [f"table '{name}' has no column '{column_name}' (named by mask)"]
        if column_name in keys:
            return [
                f"table '{name}': column '{column_name}' is a key (primary key, user_key, a "
                "link's or a foreign key's column): masking it would change which rows are "
                "whose and break the links to them; mask other columns, or delete the rows"
            ]
        kind = _python_type(physical.c[column_name])
        if strategy == "hash":
            length = getattr(physical.c[column_name].type, "length", None)
            if kind is not str or (length is not None and length < HASH_LENGTH):
                return [
                    f"table '{name}': column '{column_name}' cannot hold a hash (a text of "
                    f"{HASH_LENGTH} characters); use another mask"
                ]
        if strategy == "year" and kind not in (None, object) and not issubclass(kind, str | date):
            return [f"table '{name}': column '{column_name}' holds no dates: `year` cannot mask it"]
        return []

    def _deletes(self) -> bool:
        return any(config.erase == "delete" for config in self.source.config.tables)

    def _referring(self) -> dict[str, list[ForeignKey]]:
        """Every foreign key of the database, by the table it refers to (discovery's reading
        of the foreign keys alone; imported here, as discovery imports the engine's
        sqltypes)."""
        from datapolicy.discovery.schema import read_referring

        try:
            return read_referring(self.source.engine)
        except SQLAlchemyError as exc:
            raise SourceError(
                f"source '{self.name}': cannot read the database's foreign keys: "
                f"{str(getattr(exc, 'orig', None) or exc).strip().splitlines()[0][:300]}"
            ) from None

    def _tables(self, schema: Schema) -> Iterator[tuple[TableConfig, Table]]:
        """Each physical table once, with its rule, in the order first configured."""
        seen: set[str] = set()
        for config in self.source.config.tables:
            if config.table not in seen:
                seen.add(config.table)
                yield config, schema.tables[config.output_name]

    def _key_columns(
        self, name: str, schema: Schema, referring: dict[str, list[ForeignKey]]
    ) -> set[str]:
        first = next(c for c in self.source.config.tables if c.table == name)
        keys = {c.name for c in schema.tables[first.output_name].primary_key.columns}
        for config in self.source.config.tables:
            if config.table == name and config.user_key is not None:
                keys.add(config.user_key)
            if config.table == name and config.output_name in schema.links:
                keys.update(schema.links[config.output_name].foreign)
            if config.parent is not None and schema.tables[config.parent].name == name:
                keys.update(schema.links[config.output_name].parent)
        for key in referring.get(name, []):
            keys.update(key.referred_columns)
        for keys_of_table in referring.values():
            for key in keys_of_table:
                if key.table == name:
                    keys.update(key.columns)
        return keys

    # --- the erasure ---------------------------------------------------------------------------

    def erase(
        self,
        user_id: str,
        masker: Masker,
        *,
        dry_run: bool,
        change: Change | None = None,
        advanced: Callable[[], None] = lambda: None,
        keys: Keys | None = None,
        hashed: HashedKeys | None = None,
        before_commit: Callable[[], None] = lambda: None,
    ) -> list[TableResult]:
        """Erase the person from this source, in one transaction (rolled back for a dry run);
        the result per table. `change` receives, table by table, each row that is deleted and
        each cell that is masked (before and after): what a dry run's package shows. `keys`
        receives, in batches, the primary keys of the rows deleted and masked (the receipt's),
        before the transaction commits: a failure after that rolls them back too. With
        `hashed` (and no `change`), the rows deleted set-based whose hashes the database can
        compute (`hashed.in_sql`) go to `hashed` as hashes, a page at a time, not to `keys`.
        `advanced()` after each table is done, and `before_commit()` just before the commit
        (never in a dry run); what either raises (a cancellation) rolls back."""
        schema = self.source.reflect()
        referring = self._referring() if self._deletes() else {}
        problems = self._problems(schema, referring)
        if problems:
            raise SourceError(
                f"source '{self.name}': the erasure rules cannot be applied: {problems[0]}",
                permanent=True,
            )
        sink: Keys = keys or (lambda table, batch: None)
        try:
            with self.source.engine.connect() as connection:
                transaction = connection.begin()
                try:
                    results = self._erase(
                        connection,
                        schema,
                        referring,
                        user_id,
                        masker,
                        change,
                        advanced,
                        sink,
                        hashed,
                    )
                    if not dry_run:
                        before_commit()
                except BaseException:
                    transaction.rollback()
                    raise
                if dry_run:
                    transaction.rollback()
                else:
                    transaction.commit()
        except SQLAlchemyError as exc:
            cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300]
            raise SourceError(
                f"source '{self.name}': the erasure failed and was rolled back: {cause}"
            ) from None
        return results

    def _erase(
        self,
        connection: Connection,
        schema: Schema,
        referring: dict[str, list[ForeignKey]],
        user_id: str,
        masker: Masker,
        change: Change | None,
        advanced: Callable[[], None],
        keys: Keys,
        hashed: HashedKeys | None,
    ) -> list[TableResult]:
        plans: dict[str, _Plan] = {}
        results: dict[str, TableResult] = {}
        for config in self.source.config.tables:
            physical = schema.tables[config.output_name]
            key = tuple(str(c.name) for c in physical.primary_key.columns)
            rule = config.erase or "retain"
            results.setdefault(
                config.table, TableResult(self.name, config.table, rule, config.reason, key=key)
            )
            plans.setdefault(config.table, _Plan(config, physical, key))
        deleting = [name for name, plan in plans.items() if plan.config.erase == "delete"]
        order = _children_first(deleting, referring, self._descendants())
        parameters = self._uniform_parameters(schema, user_id)
        # Set-based (the selection in the statement, nothing held per row) where that is
        # exact: with one user-id parameter for every path, masks always (they change no
        # column any selection reads), and deletes of the tables whose selection reads no
        # table deleted from before them (nor themselves).
        fast = self._set_based(order) if parameters is not None else set()
        for config in self.source.config.tables:
            plan = plans[config.table]
            if (config.erase == "mask" and parameters is None) or (
                config.erase == "delete" and config.table not in fast
            ):
                shown = change if config.erase == "delete" else None
                self._select(connection, schema, config, plan, user_id, shown)
        for name, plan in plans.items():
            if plan.config.erase not in ("delete", "mask"):
                results[name].rows = self._count_retained(connection, schema, name, user_id)
                advanced()
        for name in deleting:
            if parameters is not None:
                self._refuse_referred(connection, schema, name, referring, parameters)
            else:
                self._refuse_others(connection, plans, name, referring)
        for name, plan in plans.items():
            if plan.config.erase == "mask":
                if parameters is not None:
                    self._mask_pages(
                        connection, schema, plan, parameters, masker, results[name], change, keys
                    )
                else:
                    self._mask(connection, plan, masker, results[name], change, keys)
                advanced()
        for name in order:
            if name in fast:
                assert parameters is not None
                self._delete_selected(
                    connection,
                    schema,
                    plans[name],
                    parameters,
                    results[name],
                    change,
                    keys,
                    hashed if change is None else None,
                )
            else:
                self._delete(connection, plans[name], referring, results[name], keys)
            advanced()
        return list(results.values())

    def _delete_selected(
        self,
        connection: Connection,
        schema: Schema,
        plan: _Plan,
        parameters: dict[str, Any],
        result: TableResult,
        change: Change | None,
        keys: Keys,
        hashed: HashedKeys | None,
    ) -> None:
        """DELETE ... WHERE <the selection>, one statement; before it, the same selection's
        keys (and, for a dry run, whole rows) are streamed, a page at a time, to `keys` (and
        `change`), or, where the database computes them (`hashed`), their hashes (no key is
        hashed in Python). The two must agree: a row that another transaction made the person's in
        between would be deleted without its key in the receipt, so a difference rolls back
        (a transient failure: the retry erases it)."""
        name = plan.config.table
        selected = self._selected(schema, name)
        shown = self._shown(plan.config, plan.table) if change is not None else []
        columns = [plan.table.c[k] for k in plan.key]
        dialect = connection.dialect.name
        in_sql = hashed.in_sql(self.name, name, columns, dialect) if hashed is not None else None
        count = 0
        if in_sql is not None:
            assert hashed is not None
            for page in _pages(connection, select(in_sql).where(selected), parameters):
                count += len(page)
                hashed.add_lines(self.name, name, ("\n".join(r[0] for r in page) + "\n").encode())
        else:
            labelled = [c.label(f"shown_{i}") for i, c in enumerate(shown)]
            width, names = len(plan.key), [str(c.name) for c in shown]
            statement = select(*columns, *labelled).where(selected)
            for page in _pages(connection, statement, parameters, raw=change is None):
                count += len(page)
                keys(name, [row[:width] for row in page] if change is not None else page)
                if change is not None:
                    for row in page:
                        change(name, {"delete": dict(zip(names, row[width:], strict=True))})
        deleted = connection.execute(plan.table.delete().where(selected), parameters).rowcount
        if deleted != count:
            raise SourceError(
                f"source '{self.name}': table '{name}': {deleted} rows were deleted where "
                f"{count} were read just before (another transaction changed the person's "
                "rows meanwhile); rolled back, to be retried"
            )
        result.rows = deleted

    def _mask_pages(
        self,
        connection: Connection,
        schema: Schema,
        plan: _Plan,
        parameters: dict[str, Any],
        masker: Masker,
        result: TableResult,
        change: Change | None,
        keys: Keys,
    ) -> None:
        """Mask the selection's rows a page at a time, in primary-key order (each page read
        whole, then its changed cells updated by key): nothing is held beyond one page."""
        columns = [plan.table.c[k] for k in plan.key]
        masked = [plan.table.c[name] for name in plan.config.mask]
        after = (
            tuple_(*columns) > tuple_(*(bindparam(f"after_{k}") for k in plan.key))
            if len(columns) > 1
            else columns[0] > bindparam(f"after_{plan.key[0]}")
        )
        first = select(*columns, *masked).where(self._selected(schema, plan.config.table))
        first = first.order_by(*columns).limit(PAGE)
        statement, bound, width = first, dict(parameters), len(columns)
        while page := connection.execute(statement, bound).all():
            plan.rows = {tuple(row[:width]): tuple(row[width:]) for row in page}
            self._mask(connection, plan, masker, result, change, keys)
            if len(page) < PAGE:
                break
            last = page[-1][:width]
            statement = first.where(after)
            bound = {**parameters, **{f"after_{k}": v for k, v in zip(plan.key, last, strict=True)}}
        plan.rows = {}

    def _entries(self, name: str) -> list[TableConfig]:
        return [config for config in self.source.config.tables if config.table == name]

    def _selected(self, schema: Schema, name: str, table: Any = None) -> ColumnElement[bool]:
        """The union of the selections of every path to table `name`, over `table` (default:
        the table itself; an alias where it is read inside a statement on itself)."""
        entries = self._entries(name)
        table = schema.tables[entries[0].output_name] if table is None else table
        return or_(*(self.source.condition(e.output_name, schema, table) for e in entries))

    def _descendants(self) -> dict[str, set[str]]:
        """The tables configured below each table (by `parent`), by physical name."""
        by_name = {config.output_name: config.table for config in self.source.config.tables}
        below: dict[str, set[str]] = {}
        for config in self.source.config.tables:
            if config.parent is not None:
                below.setdefault(by_name[config.parent], set()).add(config.table)
        return below

    def _ancestors(self, name: str) -> set[str]:
        """The tables the selection of table `name` reads (its paths' parents, up to the
        person), by physical name."""
        by_name = {config.output_name: config for config in self.source.config.tables}
        found: set[str] = set()
        for config in self._entries(name):
            while config.parent is not None:
                config = by_name[config.parent]
                found.add(config.table)
        return found

    def _set_based(self, order: list[str]) -> set[str]:
        gone: set[str] = set()
        fast: set[str] = set()
        for name in order:
            ancestors = self._ancestors(name)
            if name not in ancestors and not ancestors & gone:
                fast.add(name)
            gone.add(name)
        return fast

    def _uniform_parameters(self, schema: Schema, user_id: str) -> dict[str, Any] | None:
        """The one user-id parameter every path binds, or None where paths from roots of
        different key types bind different values (then every table goes by its keys)."""
        found = {
            repr(self.source.parameters(config, user_id, schema)): config
            for config in self.source.config.tables
        }
        if len(found) != 1:
            return None
        return self.source.parameters(next(iter(found.values())), user_id, schema)

    def _refuse_referred(
        self,
        connection: Connection,
        schema: Schema,
        name: str,
        referring: dict[str, list[ForeignKey]],
        parameters: dict[str, Any],
    ) -> None:
        """Refuse, before anything changes, if a row that is not deleted refers to one of the
        person's rows of `name` that is: deleting it would be blocked, or change that row
        (CASCADE, SET NULL). One COUNT per foreign key, in the database, but for a key that
        the configuration follows from every path to `name` (`_follows`)."""
        referred = schema.tables[self._entries(name)[0].output_name].alias()
        for key in referring.get(name, []):
            if self._follows(schema, name, key):
                continue
            inner = select(*(referred.c[c] for c in key.referred_columns)).where(
                self._selected(schema, name, referred)
            )
            others = self._entries(key.table)
            deleted = bool(others) and others[0].erase == "delete"
            if deleted:
                referrer: Any = schema.tables[others[0].output_name]
            else:
                referrer = table(key.table, *(column(c) for c in key.columns))
            match = (
                tuple_(*(referrer.c[c] for c in key.columns)).in_(inner)
                if len(key.columns) > 1
                else referrer.c[key.columns[0]].in_(inner.scalar_subquery())
            )
            where = [match]
            if deleted:  # NULL is "not selected": CASE, not NOT, so that it counts
                where.append(case((self._selected(schema, key.table), 1), else_=0) == 0)
            count = select(func.count()).select_from(referrer).where(*where)
            if connection.execute(count, parameters).scalar_one():
                raise self._refused_delete(name, key)

    def _follows(self, schema: Schema, name: str, key: ForeignKey) -> bool:
        """Whether every row that refers to one of the person's rows of `name` by `key` is
        deleted with it by construction: the referring table is deleted, and each path to
        `name` has a path below it to the referring table linked by exactly that key (whose
        selection is then every row that refers to the path's rows). Its COUNT would be 0."""
        link = Link(tuple(key.columns), tuple(key.referred_columns))
        below = {
            (config.parent, schema.links[config.output_name])
            for config in self._entries(key.table)
            if config.erase == "delete" and config.parent is not None
        }
        return all((entry.output_name, link) in below for entry in self._entries(name))

    def _refused_delete(self, name: str, key: ForeignKey) -> SourceError:
        return SourceError(
            f"source '{self.name}': the person's rows of '{name}' cannot be deleted: rows of "
            f"'{key.table}' that are not deleted with them (not the person's by the "
            "configuration, or not erased by delete) refer to them "
            f"({key.describe()}); deleting would be blocked, or change those rows. Nothing "
            "was changed in this source. Reach those rows from the person (a path to "
            f"'{key.table}' erased by delete), or retain '{name}'",
            permanent=True,
        )

    def _select(
        self,
        connection: Connection,
        schema: Schema,
        config: TableConfig,
        plan: _Plan,
        user_id: str,
        change: Change | None,
    ) -> None:
        """Add the rows this configured path selects to the table's plan."""
        physical = schema.tables[config.output_name]
        masked = tuple(config.mask)
        shown = self._shown(config, physical) if change else []
        columns = [physical.c[name] for name in (*plan.key, *masked)]
        # Labelled: a column selected twice (a key that is also shown) would be one column.
        labelled = [c.label(f"shown_{i}") for i, c in enumerate(shown)]
        statement = select(*columns, *labelled).where(
            self.source.condition(config.output_name, schema, physical)
        )
        parameters = self.source.parameters(config, user_id, schema)
        width, masked_width = len(plan.key), len(masked)
        for row in connection.execute(statement, parameters):
            key = tuple(row[:width])
            if key in plan.rows:
                continue
            plan.rows[key] = tuple(row[width : width + masked_width])
            if change is not None:
                values = row[width + masked_width :]
                names = (str(c.name) for c in shown)  # plain str: orjson takes no subclass
                change(config.table, {"delete": dict(zip(names, values, strict=True))})

    def _shown(self, config: TableConfig, physical: Table) -> list[Any]:
        """The columns a dry run shows of a row it would delete: an export's."""
        return [c for c in physical.c if c.name not in config.exclude]

    def _count_retained(
        self, connection: Connection, schema: Schema, name: str, user_id: str
    ) -> int:
        """The retained table's rows the configuration reaches (the union of its paths)."""
        configs = [config for config in self.source.config.tables if config.table == name]
        physical = schema.tables[configs[0].output_name]
        key = list(physical.primary_key.columns) or list(physical.c)
        total = 0
        seen: set[tuple[Any, ...]] = set()
        for config in configs:
            selected = schema.tables[config.output_name]
            statement = select(*key).where(
                self.source.condition(config.output_name, schema, selected)
            )
            parameters = self.source.parameters(config, user_id, schema)
            for row in connection.execute(statement, parameters):
                if tuple(row) not in seen:
                    seen.add(tuple(row))
                    total += 1
        return total

    def _mask(
        self,
        connection: Connection,
        plan: _Plan,
        masker: Masker,
        result: TableResult,
        change: Change | None,
        keys: Keys,
    ) -> None:
        """UPDATE the cells of the plan's rows whose masked value differs (none, when already
        masked), by primary key; rows that change the same columns go in one executemany."""
        masked = list(plan.config.mask.items())
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        changed: list[tuple[Any, ...]] = []
        for key, values in plan.rows.items():
            after = self._masked(plan, masker, key, masked, values, change)
            if not after:
                continue
            result.rows += 1
            result.cells += len(after)
            changed.append(key)
            parameters = {f"key_{k}": v for k, v in zip(plan.key, key, strict=True)}
            for name, value in _bindable(after, connection.dialect.name).items():
                parameters[f"value_{name}"] = value
            by_columns.setdefault(tuple(after), []).append(parameters)
        where = and_(*(plan.table.c[k] == bindparam(f"key_{k}") for k in plan.key))
        for names, rows in by_columns.items():
            assignments: dict[str, BindParameter[Any]] = {
                name: bindparam(f"value_{name}") for name in names
            }
            statement = plan.table.update().where(where).values(assignments)
            for batch in _batches(rows):
                connection.execute(statement, batch)
        for batch in _batches(changed):
            keys(plan.config.table, batch)

    def _masked(
        self,
        plan: _Plan,
        masker: Masker,
        key: tuple[Any, ...],
        masked: list[tuple[str, MaskStrategy | MaskValue]],
        values: tuple[Any, ...],
        change: Change | None,
    ) -> dict[str, Any]:
        """The row's masked cells whose value changes, by column."""
        after: dict[str, Any] = {}
        for (name, strategy), before in zip(masked, values, strict=True):
            try:
                new = masker.mask(strategy, before)
            except ValueError as exc:
                raise SourceError(
                    f"source '{self.name}': table '{plan.config.table}', column '{name}': {exc}",
                    permanent=True,
                ) from None
            if new == before:
                continue
            after[name] = new
            if change is not None:
                cell = {"column": name, "before": before, "after": new}
                change(
                    plan.config.table,
                    {"mask": {"key": dict(zip(plan.key, key, strict=True)), **cell}},
                )
        return after

    def _refuse_others(
        self,
        connection: Connection,
        plans: dict[str, _Plan],
        name: str,
        referring: dict[str, list[ForeignKey]],
    ) -> None:
        """Refuse (before anything is deleted) if a row that is not to be deleted refers to a row
        of `name` that is: deleting it would be blocked, or change that row (CASCADE, SET NULL)."""
        plan = plans[name]
        for key in referring.get(name, []):
            others = plans.get(key.table)
            deleted = others.rows if others is not None and others.config.erase == "delete" else {}
            other_key = _primary_key(connection, key.table) if others is None else others.key
            referred = table(name, *(column(c) for c in (*plan.key, *key.referred_columns)))
            referrer = table(key.table, *(column(c) for c in (*other_key, *key.columns)))
            for batch in _batches(list(plan.rows)):
                inner = select(*(referred.c[c] for c in key.referred_columns)).where(
                    _in(referred, plan.key, batch)
                )
                selected: list[ColumnElement[Any]] = [referrer.c[c] for c in other_key]
                statement = select(*(selected or [func.count()])).where(
                    tuple_(*(referrer.c[c] for c in key.columns)).in_(inner)
                    if len(key.columns) > 1
                    else referrer.c[key.columns[0]].in_(inner.scalar_subquery())
                )
                outside = [
                    row
                    for row in connection.execute(statement)
                    if not other_key or tuple(row) not in deleted
                ]
                if outside and (other_key or outside[0][0]):
                    raise self._refused_delete(name, key)

    def _delete(
        self,
        connection: Connection,
        plan: _Plan,
        referring: dict[str, list[ForeignKey]],
        result: TableResult,
        sink: Keys,
    ) -> None:
        """Delete the plan's rows by primary key, in batches."""
        keys = list(plan.rows)
        result.rows = len(keys)
        if connection.dialect.name in ("mysql", "mariadb"):
            for key in referring.get(plan.config.table, []):
                itself = key.table == plan.config.table
                if itself and all(plan.table.c[c].nullable for c in key.columns):
                    for batch in _batches(keys):
                        connection.execute(
                            plan.table.update()
                            .where(_in(plan.table, plan.key, batch))
                            .values({c: null() for c in key.columns})
                        )
        for batch in _batches(keys):
            connection.execute(plan.table.delete().where(_in(plan.table, plan.key, batch)))
            sink(plan.config.table, batch)


def _pages(
    connection: Connection,
    statement: Select[*tuple[Any, ...]],
    parameters: dict[str, Any],
    *,
    raw: bool = True,
) -> Iterator[Sequence[Sequence[Any]]]:
    """The statement's rows, PAGE at a time, read by a server-side cursor (SQLite's reads as it
    goes), so that memory is one page whatever the count.

    With `raw`, where the driver's own values are what SQLAlchemy would give (no result
    processing for the columns read, parameters of plain ints and texts), straight from the
    driver's cursor: SQLAlchemy's rows cost about ten times the driver's tuples, more than
    the DELETE they go with (docs/benchmarks.md)."""
    dialect = connection.dialect
    direct = (
        raw
        and all(type(v) in (int, str) or v is None for v in parameters.values())
        and all(c.type.result_processor(dialect, None) is None for c in statement.selected_columns)
    )
    driver: Any = connection.connection.driver_connection
    server_side: Callable[[], Any] | None = None
    if dialect.name == "sqlite":
        server_side = driver.cursor
    elif dialect.name == "postgresql" and dialect.driver == "psycopg":
        server_side = lambda: driver.cursor(name="datapolicy_erasure_keys")  # noqa: E731
    elif dialect.name in ("mysql", "mariadb") and dialect.driver in ("pymysql", "mysqldb"):
        server_side = lambda: driver.cursor(dialect.dbapi.cursors.SSCursor)  # type: ignore[union-attr]  # noqa: E731
    if not direct or server_side is None:
        # This statement's options, not the connection's (whose next statement, the DELETE,
        # would be declared a server-side cursor too: PostgreSQL refuses that).
        streamed = {"stream_results": True, "yield_per": PAGE}
        yield from connection.execute(statement, parameters, execution_options=streamed).partitions(
            PAGE
        )
        return
    compiled = statement.compile(dialect=dialect)
    values: Any = compiled.construct_params(parameters)
    if compiled.positional:
        values = tuple(values[name] for name in compiled.positiontup or ())
    cursor = server_side()
    try:
        cursor.execute(str(compiled), values)
        while page := cursor.fetchmany(PAGE):
            yield page
    finally:
        cursor.close()


def _children_first(
    names: list[str], referring: dict[str, list[ForeignKey]], below: dict[str, set[str]]
) -> list[str]:
    """The tables to delete from, each after every table among them that refers to it (by a
    foreign key) or is configured below it (`below`)."""
    order: list[str] = []
    visited: set[str] = set()
    wanted = set(names)

    def visit(name: str) -> None:
        visited.add(name)
        children = [key.table for key in referring.get(name, [])] + sorted(below.get(name, ()))
        for child in children:
            if child in wanted and child not in visited:
                visit(child)
        order.append(name)

    for name in reversed(names):
        if name not in visited:
            visit(name)
    return order


def _in(source: Any, key: Sequence[str], batch: Sequence[tuple[Any, ...]]) -> ColumnElement[bool]:
    condition: ColumnElement[bool]
    if len(key) == 1:
        condition = source.c[key[0]].in_([k[0] for k in batch])
    else:
        condition = tuple_(*(source.c[c] for c in key)).in_(list(batch))
    return condition


def _primary_key(connection: Connection, name: str) -> tuple[str, ...]:
    return tuple(inspect(connection).get_pk_constraint(name)["constrained_columns"] or ())


def _batches(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), KEY_BATCH):
        yield items[start : start + KEY_BATCH]


def _bindable(values: dict[str, Any], dialect: str) -> dict[str, Any]:
    """SQLite takes dates as text (its driver's date adapters are deprecated)."""
    if dialect != "sqlite":
        return values
    return {
        name: value.isoformat(sep=" ")
        if isinstance(value, datetime)
        else value.isoformat()
        if isinstance(value, date)
        else value
        for name, value in values.items()
    }


def _python_type(column: Any) -> type | None:
    try:
        python_type: type = column.type.python_type
    except NotImplementedError:
        return None
    return python_type
