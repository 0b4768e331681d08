"""Which operations were written since a point in the operations' change log, for the GET-by-id
read cache (web/hot_path/readcache.py).

On SQLite, triggers add an entry naming the operation to `operation_changes` (tables.py,
migration 0014) for every row of `operations` a statement inserts, updates or deletes, in the
same transaction, whoever makes it: this process's API and export threads, `datapolicy worker`
processes, other API processes, an operator's `sqlite3` shell. The cache learns that something
was committed from the store's change token (`Database.change_token`) and reads here which
operations it was about, so that a worker's heartbeat drops one entry instead of all of them.

Entries are numbered in commit order (SQLite has one writer at a time, and AUTOINCREMENT never
gives a number twice), and the triggers keep only the newest few thousand. A reader is told that
anything may have changed, and starts again from the end of the log, whenever the log cannot say
what did:
- on its first read, and when the log cannot be read;
- when entries were pruned before it read them (a gap before the first entry it reads);
- when the schema changed since its last read (`PRAGMA schema_version`: a migration, down and
  up again, recreates the log and numbers from 1; a restore through SQLite's backup API, which
  brings an older log, changes it too), or the log ends before the entry it saw last;
- when a trigger is missing (a table rebuild drops them, and then no write is named): then on
  every read, so the cache is emptied by every commit, as it was before the log.
All of that is one statement, so one snapshot of the database. Writes by a connection that turned
SQLite's triggers off (`SQLITE_DBCONFIG_ENABLE_TRIGGER`) are not named: no program may write to
the store's file that way (docs/deployment.md).
PostgreSQL has no read cache, and no log is read there.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import Integer, bindparam, column, func, literal, select, table, true

from datapolicy.errors import DatapolicyError
from datapolicy.store.database import Database
from datapolicy.store.tables import operation_changes

# Migration 0014's triggers, all of which must be there for the log to name every write.
TRIGGERS = (
    "operation_changes_insert",
    "operation_changes_update",
    "operation_changes_delete",
    "operation_changes_replace_insert",
    "operation_changes_replace_update",
    "operation_changes_prune",
)
_NONE_AFTER = 2**62  # a `seen` after every entry: a first read reads none of them


class Position(NamedTuple):
    """Where a reader is in the log: the schema it read it under and the newest entry read."""

    schema: int
    seq: int


@dataclass(frozen=True)
class Changes:
    """What a read of the log found."""

    seen: Position | None  # where the next read starts (None: from the end of the log)
    operations: frozenset[str] | None  # None: anything may have changed


class ChangeLog:
    """Reads of the change log of one (SQLite) database."""

    def __init__(self, database: Database):
        self.database = database
        seq, operation = operation_changes.c.seq, operation_changes.c.operation_id
        master = table("sqlite_master", column("type"), column("name"))
        pragma = table("pragma_schema_version", column("schema_version", Integer))
        schema_version = select(pragma.c.schema_version)
        triggers = (
            select(func.count())
            .select_from(master)
            .where(master.c.type == "trigger", master.c.name.in_(TRIGGERS))
        )
        entries = select(seq, operation).where(seq > bindparam("seen", 0)).subquery()
        one_row = select(literal(1).label("one")).subquery()  # a row even with no entries
        query = (
            select(
                schema_version.scalar_subquery(),
                triggers.scalar_subquery(),
                select(func.coalesce(func.max(seq), 0)).scalar_subquery(),
                entries.c.seq,
                entries.c.operation_id,
            )
            .select_from(one_row.outerjoin(entries, true()))
            .order_by(entries.c.seq)
        )
        self._read, self._parameters = database.compile(query)

    def since(self, seen: Position | None) -> Changes:
        """The operations named after `seen`, or None when the log cannot tell (the module's
        docstring says when); with `seen` None, only where the log ends now."""
        after = _NONE_AFTER if seen is None else seen.seq
        try:
            rows = self.database.fetch_rows(self._read, {**self._parameters, "seen": after})
        except (sqlite3.OperationalError, DatapolicyError):
            return Changes(None, None)  # a log that cannot be read tells nothing
        schema, triggers, newest = rows[0][0], rows[0][1], rows[0][2]
        if triggers != len(TRIGGERS):
            return Changes(None, None)
        end = Position(schema, newest)
        if seen is None or seen.schema != schema or newest < seen.seq:
            return Changes(end, None)
        entries = [(entry, operation) for *_, entry, operation in rows if entry is not None]
        if not entries:
            return Changes(seen, frozenset())
        if entries[0][0] != seen.seq + 1:  # pruned before they were read
            return Changes(end, None)
        return Changes(end, frozenset(operation for _, operation in entries))
