"""Reset, snapshot and restore of what a test leaves behind: the operations and the packages.

A snapshot is `<data-dir>/snapshots/<name>/`: the rows of the `operations` table (the store's
only state: the queue, leases and retention are columns of it), read in one statement and so
consistent while the service writes, as `operations.json`, and the `exports` directory.
Restoring replaces every row in one transaction, so every reader (other API processes, the
read cache, which watches for commits) sees the snapshot at once, or the rows before it. The
same on SQLite and PostgreSQL; the audit trail is append-only and is neither saved nor rolled
back.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select

from datapolicy.errors import InvalidRequest, NotFound
from datapolicy.store import Database
from datapolicy.store.tables import operations

SNAPSHOTS_DIR = "snapshots"
_STORE_FILE = "operations.json"
_ROWS_PER_INSERT = 200
_EXPORTS = "exports"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


class DataDirectory:
    def __init__(self, database: Database, data_dir: Path, exports_dir: Path):
        self.database = database
        self.snapshots = data_dir / SNAPSHOTS_DIR
        self.exports = exports_dir

    def reset(self) -> int:
        """Delete every operation and every package in the exports directory; returns how many
        operations there were."""
        deleted = self.database.execute(operations.delete())
        _empty(self.exports)
        return deleted

    def names(self) -> list[str]:
        if not self.snapshots.is_dir():
            return []
        return sorted(p.name for p in self.snapshots.iterdir() if (p / _STORE_FILE).is_file())

    def snapshot(self, name: str) -> None:
        """Save the store and the packages as `name`, replacing a snapshot of that name."""
        target = self.snapshots / _checked(name)
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        rows = self.database.fetch_all(select(operations))
        document = {
            "columns": [column.name for column in operations.columns],
            "rows": [list(row) for row in rows],
        }
        _write_atomically(target / _STORE_FILE, orjson.dumps(document))
        if self.exports.is_dir():
            shutil.copytree(self.exports, target / _EXPORTS)

    def restore(self, name: str) -> None:
        """Make the store and the packages what they were when `name` was taken."""
        source = self.snapshots / _checked(name)
        if not (source / _STORE_FILE).is_file():
            raise NotFound(f"There is no snapshot named '{name}'.")
        rows = _rows((source / _STORE_FILE).read_bytes())
        with self.database.transaction() as transaction:
            transaction.execute(operations.delete())
            for start in range(0, len(rows), _ROWS_PER_INSERT):
                chunk = rows[start : start + _ROWS_PER_INSERT]
                transaction.execute(operations.insert().values(chunk))
        _empty(self.exports)
        if (source / _EXPORTS).is_dir():
            shutil.copytree(source / _EXPORTS, self.exports, dirs_exist_ok=True)


def _rows(document: bytes) -> list[dict[str, Any]]:
    """The saved rows as column -> value, for the columns the table has now (a snapshot taken
    before a migration added a column leaves it to its default)."""
    saved = orjson.loads(document)
    known = {column.name for column in operations.columns}
    names = saved["columns"]
    return [
        {name: value for name, value in zip(names, row, strict=True) if name in known}
        for row in saved["rows"]
    ]


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def _checked(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidRequest(
            "A snapshot name is 1 to 64 letters, digits, '_', '.' or '-', not starting with '.'."
        )
    return name


def _empty(directory: Path) -> None:
    if not directory.is_dir():
        return
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
