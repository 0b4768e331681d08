"""Reset, snapshot and restore of what a test leaves behind: the operations and the packages.

A snapshot is `<data-dir>/snapshots/<name>/`: the SQLite operation store, copied with SQLite's
online backup API (consistent while the service writes), and the `exports` directory. Restoring
copies the store back the same way, into the live database, so open connections (and the read
cache, which watches for commits) see it at once. Snapshots need the embedded SQLite store; a
reset works on PostgreSQL too.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

from datapolicy.errors import InvalidRequest, NotFound
from datapolicy.store import Database
from datapolicy.store.database import SQLiteDatabase
from datapolicy.store.tables import operations

SNAPSHOTS_DIR = "snapshots"
_STORE_FILE = "operations.sqlite3"
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
        _copy_database(self._sqlite_path(), target / _STORE_FILE)
        if self.exports.is_dir():
            shutil.copytree(self.exports, target / _EXPORTS)

    def restore(self, name: str) -> None:
        """Make the store and the packages what they were when `name` was taken."""
        source = self.snapshots / _checked(name)
        if not (source / _STORE_FILE).is_file():
            raise NotFound(f"There is no snapshot named '{name}'.")
        _copy_database(source / _STORE_FILE, self._sqlite_path())
        _empty(self.exports)
        if (source / _EXPORTS).is_dir():
            shutil.copytree(source / _EXPORTS, self.exports, dirs_exist_ok=True)

    def _sqlite_path(self) -> Path:
        if not isinstance(self.database, SQLiteDatabase):
            raise InvalidRequest("Snapshots need the embedded SQLite operation store.")
        return self.database.path


def _checked(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidRequest(
            "A snapshot name is 1 to 64 letters, digits, '_', '.' or '-', not starting with '.'."
        )
    return name


def _copy_database(source: Path, target: Path) -> None:
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def _empty(directory: Path) -> None:
    if not directory.is_dir():
        return
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
