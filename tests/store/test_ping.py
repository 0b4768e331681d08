"""`Database.ping`, the readiness check's query: it answers while the store does, and fails
promptly when the store is gone, whatever the connections already open still see."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from psycopg_pool import PoolTimeout

from datapolicy.store import Database, PostgreSQLDatabase, SQLiteDatabase, open_database


def test_a_working_store_answers(database: Database):
    database.ping(2)


def test_sqlite_fails_once_its_file_is_gone_or_not_a_database(tmp_path: Path):
    path = tmp_path / "store.sqlite3"
    database = open_database(f"sqlite:///{path}")
    assert isinstance(database, SQLiteDatabase)
    database.migrate()
    try:
        database.ping(2)
        moved = tmp_path / "moved.sqlite3"
        path.rename(moved)
        with pytest.raises(Exception, match="unable to open database file"):
            database.ping(2)
        path.write_bytes(b"this is not a database" * 100)
        with pytest.raises(Exception, match="not a database"):
            database.ping(2)
        path.unlink()
        moved.rename(path)
        database.ping(2)
    finally:
        database.close()


def test_postgresql_on_a_closed_port_fails_within_the_timeout():
    with socket.socket() as sock:  # a port nothing listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    database = PostgreSQLDatabase(
        f"postgresql://datapolicy:secret@127.0.0.1:{port}/datapolicy", pool_min_size=0
    )
    try:
        started = time.monotonic()
        with pytest.raises(PoolTimeout) as raised:
            database.ping(0.5)
        assert time.monotonic() - started < 3
        assert "secret" not in str(raised.value)
    finally:
        database.close()
