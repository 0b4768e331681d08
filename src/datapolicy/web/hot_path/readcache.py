"""A cache of GET-by-id response bodies, kept exact by checking the database for commits.

Why: a GET by id that reads SQLite and rebuilds the entity costs the server much more CPU than one
that serves a body from memory (docs/benchmarks.md).

Consistency: a body from the cache is what a read of the database would have given at some moment
after the request was received. Every lookup first looks for commits made since the last, by any
connection in any process: this process's API and export threads, `datapolicy worker` processes,
other API processes. That a commit was made is told by the store's change token
(`Database.change_token`, store/database.py: on SQLite `PRAGMA data_version` on a connection of the
token's own that never writes, so that every commit is another connection's and changes the value;
a token that cannot be read counts as a change). Which operations it changed is told by the
operations' change log (store/changes.py), which SQLite triggers write in the same transaction as
the change: those operations' entries are dropped, and the whole cache is emptied when the log
cannot tell (store/changes.py says when: a first read, entries pruned before they were read, a
schema change, a missing trigger). The token is read before the log, so a commit made between the
two reads is either in the log read or changes the token again. A change is looked for on every
lookup, after the request has reached the app, so a write committed before the request arrived (a
PATCH, a DELETE, a worker's progress, in this process or another) is always seen, as with a read of
the database, whatever the HTTP server and however it schedules requests. A store without a token
(PostgreSQL) gets no cache.

Cost: a lookup with no commit since the last is one read of the token; a commit adds one read of
the log (a few entries by their primary key). A store written to all the time (many exports
heartbeating) loses only the entries of the operations written, not the rest (docs/benchmarks.md).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable

from datapolicy.store.changes import ChangeLog, Changes, Position
from datapolicy.store.database import Database

# Entries kept, least recently used out first: ~70 MB with bench/populate.py's operations
# (~470-byte bodies, ~680 bytes an entry in all). Clients poll the operations they started, so
# the polled set is much smaller than the table; the benchmark polls 100,000 (docs/benchmarks.md).
DEFAULT_MAX_ENTRIES = 100_000

# (the body after its `@odata.context` member, the ETag value, the userId: for the audit entry)
Entry = tuple[bytes, bytes, str]


class ReadCache:
    """Entries by operation id, dropped when the change token changes and `changes` names
    them (all of them when it cannot tell).

    Used from the event loop's thread only (the ASGI app's), so it needs no lock."""

    def __init__(
        self,
        change_token: Callable[[], Hashable],
        changes: Callable[[Position | None], Changes],
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ):
        self._change_token = change_token
        self._changes = changes  # the operations changed after an entry of the change log
        self._max_entries = max_entries
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._token: Hashable = object()  # equal to no token: the first check empties
        self._seen: Position | None = None  # where the next read of the change log starts

    def get(self, operation_id: str) -> Entry | None:
        """The entry for this id, if there is one and nothing has been committed since it was
        made. Call it before reading the database on a miss, and `put` what that read gave."""
        self._check()
        entry = self._entries.get(operation_id)
        if entry is not None:
            self._entries.move_to_end(operation_id)
        return entry

    def put(self, operation_id: str, entry: Entry) -> None:
        """Keep what was read after `get` missed. Nothing may be awaited in between: the read
        then started after `get`'s check, so the entry is at least as recent as the check, and
        a commit since then that changes the operation drops it at the next one."""
        entries = self._entries
        entries[operation_id] = entry
        if len(entries) > self._max_entries:
            entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def _check(self) -> None:
        token = self._change_token()
        if token == self._token:
            return
        changed = self._changes(self._seen)
        if changed.operations is None:
            self._entries.clear()
        else:
            for operation_id in changed.operations:
                self._entries.pop(operation_id, None)
        self._seen = changed.seen
        self._token = token  # only once what changed is dealt with: else the next one looks


def read_cache_for(database: Database) -> ReadCache | None:
    """A cache for the store's database if it has a change token (SQLite), else None."""
    change_token = database.change_token()
    return None if change_token is None else ReadCache(change_token, ChangeLog(database).since)
