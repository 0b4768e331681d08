"""Which operations were written since a point in the operations' change log, for the GET-by-id
read cache (web/hot_path/readcache.py).

On SQLite, triggers add an entry naming the operation to `operation_changes` (tables.py,
migration 0014) for every row of `operations` a statement inserts, updates or deletes, in the
same transaction, whoever makes it: this process's API and export threads, `datapolicy worker`
processes, other API processes, an operator's `sqlite3` shell. The cache learns that something
was committed from the store's change token (`Database.change_token`) and reads here which
operations it was about, so that a worker's heartbeat drops one entry instead of all of them.

Entries are numbered in commit order (SQLite has one writer at a time, and AUTOINCREMENT never
gives a number twice), and the triggers keep only the newest few thousand. A reader that fell
behind further than that sees a gap before the first entry it reads and is told that anything
may have changed, as it is on its first read and when the log cannot be read.
PostgreSQL has no read cache, and no log (`change_log_for`).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from sqlalchemy import bindparam, func, select

from datapolicy.errors import DatapolicyError
from datapolicy.store.database import Database, SQLiteDatabase
from datapolicy.store.tables import operation_changes


@dataclass(frozen=True)
class Changes:
    """What a read of the log found."""

    seen: int  # the newest entry read: where the next read starts
    operations: frozenset[str] | None  # None: anything may have changed


class ChangeLog:
    """Reads of the change log of one database."""

    def __init__(self, database: Database):
        self.database = database
        seq, operation = operation_changes.c.seq, operation_changes.c.operation_id
        query = select(seq, operation).where(seq > bindparam("seen")).order_by(seq)
        self._since, _ = database.compile(query)
        self._newest = database.compile(select(func.coalesce(func.max(seq), 0)))

    def since(self, seen: int | None) -> Changes:
        """The operations named after entry `seen`; with `seen` None, where the log ends now."""
        try:
            if seen is None:
                row = self.database.fetch_one(*self._newest)
                return Changes(row[0] if row is not None else 0, None)
            rows = self.database.fetch_rows(self._since, {"seen": seen})
        except (sqlite3.Error, DatapolicyError):  # a log that cannot be read tells nothing
            return Changes(seen or 0, None)
        if not rows:
            return Changes(seen, frozenset())
        if rows[0][0] != seen + 1:  # entries were pruned before they were read
            return Changes(rows[-1][0], None)
        return Changes(rows[-1][0], frozenset(operation for _, operation in rows))


def change_log_for(database: Database) -> ChangeLog | None:
    """The change log of a SQLite store; None elsewhere (PostgreSQL keeps none)."""
    return ChangeLog(database) if isinstance(database, SQLiteDatabase) else None
