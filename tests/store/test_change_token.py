"""The store's change token (`Database.change_token`), what the GET-by-id read cache
(web/hot_path/readcache.py) is emptied by: on SQLite it changes with every commit, from another
connection of this process or from another process, holds no snapshot between reads, and
counts a database it cannot read as changed; PostgreSQL offers none (nothing is cached)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from datapolicy.store import Database, SQLiteDatabase


def test_the_sqlite_token_sees_every_commit(tmp_path: Path):
    database = SQLiteDatabase(tmp_path / "store.sqlite3")
    database.migrate()  # WAL, as every store file
    path = database.path
    token = database.change_token()
    before = token()
    assert token() == before
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("CREATE TABLE t (x)")  # another connection of this process
    after_create = token()
    assert after_create != before
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
            "c.execute('INSERT INTO t VALUES (2)'); c.commit(); c.close()",
            str(path),
        ],
        check=True,
    )
    assert token() != after_create  # another process
    # The token's connection holds no snapshot: a checkpoint can empty the WAL.
    busy, _, _ = writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0
    assert (path.parent / f"{path.name}-wal").stat().st_size == 0
    writer.close()
    database.close()


def test_a_sqlite_token_that_cannot_be_read_is_a_change(tmp_path: Path):
    """A file that cannot be opened (here: its directory is missing) gives a value equal to no
    other, so a cache that sees it is emptied instead of serving what it holds."""
    token = SQLiteDatabase(tmp_path / "missing" / "store.sqlite3").change_token()
    first = token()
    assert first != token()
    assert first == first


def test_only_sqlite_offers_a_token(database: Database):
    token = database.change_token()
    assert (token is not None) == isinstance(database, SQLiteDatabase)
