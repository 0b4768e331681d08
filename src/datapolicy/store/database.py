"""The embedded database: SQLite in the data directory, reached through the raw `sqlite3` driver.

Statements are built with SQLAlchemy Core (never by pasting strings) and compiled once to SQL;
executing them through `sqlite3` directly costs a few microseconds where a SQLAlchemy connection
checkout costs tens (see docs/benchmarks.md), which matters on the GET-by-id path.

SQLite allows one writer at a time; WAL mode lets readers go on while it writes. Each thread gets
its own connection, because a `sqlite3` connection must not be shared between threads.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql import ClauseElement

BUSY_TIMEOUT_MS = 10_000  # how long a writer waits for the lock before failing
_DIALECT = sqlite.dialect(paramstyle="named")
_MIGRATIONS = Path(__file__).with_name("migrations")


class Database:
    """A SQLite database file, with a connection per thread."""

    def __init__(self, path: Path):
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def migrate(self) -> None:
        """Bring the schema to the newest revision (a no-op when it is already there)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(self.url)
        try:
            with engine.begin() as connection:
                config = Config()
                config.set_main_option("script_location", str(_MIGRATIONS))
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        finally:
            engine.dispose()

    def connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT_MS / 1000,
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            # OData's startswith/endswith/contains are case-sensitive; SQLite's LIKE is not,
            # unless told so.
            connection.execute("PRAGMA case_sensitive_like=ON")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    def fetch_all(self, statement: ClauseElement) -> list[tuple[Any, ...]]:
        sql, params = compile_statement(statement)
        return self.connection().execute(sql, params).fetchall()

    def fetch_one(self, sql: str, params: dict[str, Any] | Sequence[Any]) -> tuple[Any, ...] | None:
        return self.connection().execute(sql, params).fetchone()

    def execute(self, statement: ClauseElement) -> int:
        """Run a write statement in its own transaction; returns the number of rows it touched."""
        sql, params = compile_statement(statement)
        with self.transaction() as connection:
            return connection.execute(sql, params).rowcount

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate (write-locking) transaction, committed unless the block raises."""
        connection = self.connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")


def compile_statement(statement: ClauseElement) -> tuple[str, dict[str, Any]]:
    compiled = statement.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
    return str(compiled), compiled.params
