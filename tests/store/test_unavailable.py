"""A database that cannot answer now raises `errors.Unavailable` (the API's 503), not the
driver's error (a 500): PostgreSQL that cannot be reached, SQLite locked past its busy timeout.
Errors that are not passing stay what they are."""

from __future__ import annotations

import socket
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from datapolicy.errors import Unavailable
from datapolicy.store import OperationStore, PostgreSQLDatabase, SQLiteDatabase
from datapolicy.store.database import Timeouts
from datapolicy.store.queue import OperationQueue


def test_postgresql_that_cannot_be_reached_is_unavailable_for_reads_and_writes():
    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    db = PostgreSQLDatabase(
        f"postgresql://postgres:secret@127.0.0.1:{port}/test", pool_min_size=1, pool_timeout=0.2
    )
    try:
        store = OperationStore(db)
        with pytest.raises(Unavailable) as read:
            store.get("00000000-0000-0000-0000-000000000000")
        assert "secret" not in read.value.message
        assert str(port) not in read.value.message
        with pytest.raises(Unavailable):
            store.create("someone", "/exports")
        with pytest.raises(Unavailable):
            OperationQueue(db).claim("worker", timedelta(seconds=5))
    finally:
        db.close()


def test_sqlite_locked_past_the_lock_timeout_is_unavailable(tmp_path: Path):
    db = SQLiteDatabase(tmp_path / "store.sqlite3", Timeouts(lock=0.05))
    db.migrate()
    store = OperationStore(db)
    store.create("someone", "/exports")  # the store's connection is open, in WAL mode
    other = sqlite3.connect(db.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        with pytest.raises(Unavailable):
            store.create("someone", "/exports")
        other.execute("ROLLBACK")
        operation, created = store.create("someone", "/exports")
        assert created
        assert store.get(operation.id) == operation
    finally:
        other.close()
        db.close()


def test_other_sqlite_errors_are_not_outages(tmp_path: Path):
    db = SQLiteDatabase(tmp_path / "store.sqlite3")  # never migrated: no tables
    try:
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            OperationStore(db).create("someone", "/exports")
    finally:
        db.close()
