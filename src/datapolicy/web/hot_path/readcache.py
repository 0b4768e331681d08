"""A cache of GET-by-id response bodies, kept exact by checking the database for commits.

Why: a GET by id that reads SQLite and rebuilds the entity costs the server much more CPU than
one that serves a body from memory (docs/benchmarks.md).

Consistency: a body from the cache is what a read of the database would have given at some
moment after the request was received. The whole cache is emptied as soon as anything has been
committed to the database, by any connection in any process: this process's API and export
threads, `datapolicy worker` processes, other API processes. Commits are detected by the
store's change token (`Database.change_token`, store/database.py: on SQLite `PRAGMA
data_version` on a connection of the token's own that never writes, so that every commit is
another connection's and changes the value; a token that cannot be read counts as a change).
A store without one (PostgreSQL) gets no cache. A change is looked for on every lookup, after
the request has reached the app, so a write committed before the request arrived (a PATCH, a
DELETE, a worker's progress, in this process or another) is always seen, as with a read of the
database, whatever the HTTP server and however it schedules requests.

Invalidation is coarse: any commit empties the whole cache, as the cache cannot tell which rows
a commit changed. A store that is written to all the time (many exports heartbeating) gets
few hits; a miss costs what a read without the cache costs plus a little (the check and the
insert: ~2 us in process, a few percent of a request under load; see docs/benchmarks.md).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable

from datapolicy.store.database import Database

# Entries kept, least recently used out first: ~70 MB with bench/populate.py's operations
# (~470-byte bodies, ~680 bytes an entry in all). Clients poll the operations they started, so
# the polled set is much smaller than the table; the benchmark polls 100,000 (docs/benchmarks.md).
DEFAULT_MAX_ENTRIES = 100_000

# (the body after its `@odata.context` member, the ETag value, the userId: for the audit entry)
Entry = tuple[bytes, bytes, str]


class ReadCache:
    """Entries by operation id, emptied whenever the change token changes.

    Used from the event loop's thread only (the ASGI app's), so it needs no lock."""

    def __init__(
        self, change_token: Callable[[], Hashable], max_entries: int = DEFAULT_MAX_ENTRIES
    ):
        self._change_token = change_token
        self._max_entries = max_entries
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._token: Hashable = object()  # equal to no token: the first check empties

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
        any commit since then empties the cache at the next one."""
        entries = self._entries
        entries[operation_id] = entry
        if len(entries) > self._max_entries:
            entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def _check(self) -> None:
        token = self._change_token()
        if token != self._token:
            self._entries.clear()
            self._token = token


def read_cache_for(database: Database) -> ReadCache | None:
    """A cache for the store's database if it has a change token (SQLite), else None."""
    change_token = database.change_token()
    return None if change_token is None else ReadCache(change_token)
