"""The operation store's database: SQLite (the embedded default) or PostgreSQL, chosen by URL.

`Database` is the seam; `SQLiteDatabase` and `PostgreSQLDatabase` are its two implementations,
and `open_database(url)` picks one. Above this module the store and the queue run the same
statements on both: they are built with SQLAlchemy Core (never by pasting strings) and compiled
for the database's dialect (`Database.compile`), then executed through the raw driver (`sqlite3`,
psycopg 3). Executing directly costs a few microseconds where a SQLAlchemy connection checkout
costs tens (see docs/benchmarks.md), which matters on the GET-by-id path.

What differs, and is decided here once:

- **Connections.** SQLite: a connection per thread (a `sqlite3` connection must not be shared
  between threads); WAL mode lets readers go on while one writer writes. PostgreSQL: a
  `psycopg_pool.ConnectionPool` sized by configuration, connections in autocommit mode, so a read
  outside a transaction holds nothing once it returns.
- **Transactions.** `transaction()` is the only way to write. SQLite: `BEGIN IMMEDIATE`, which
  takes the database's write lock at once, so every read-modify-write is serialised with all
  other writers (in every process). PostgreSQL: READ COMMITTED; statements that read a row in
  order to change it lock it with `SELECT ... FOR UPDATE` (which the SQLite dialect compiles to
  nothing: there the write lock is already held), and claims skip rows others have locked
  (`FOR UPDATE SKIP LOCKED`). Within a transaction every read the thread makes, through the
  transaction or through the `Database`, is part of it (SQLite: the thread has one connection;
  PostgreSQL: the transaction pins its pooled connection to the thread).
- **Migrations.** The same Alembic revisions; on PostgreSQL under an advisory lock, so that
  processes starting together do not both create the tables.
- **Outages.** A database that cannot be reached or answer in time (PostgreSQL: a failed or
  dropped connection, no pooled connection free within `pool_timeout`, a lock not granted within
  `lock_timeout`, a statement past `statement_timeout`; SQLite: the write lock still held by
  another writer after `lock_timeout`) raises `errors.Unavailable`, which the API answers with
  503 and Retry-After and the workers survive by polling again; the driver's message goes to
  the log, not to clients.
- **Bounded waits.** One stalled process (paused, swapped out, frozen mid-transaction) must not
  stall the others through a lock it holds: every PostgreSQL connection of the pool runs with
  `lock_timeout`, `statement_timeout` and `idle_in_transaction_session_timeout` (`Timeouts`,
  `[store]` in docs/configuration.md), so a waiter gives up with a 503 and the server ends the
  stalled session, releasing its locks. A transaction that locks the lock every writer needs,
  the audit trail's head, first lowers its own idle timeout to `audit_idle_timeout` (2 s,
  `limit_idle`), below `lock_timeout`: a waiter outlasts a frozen holder and then succeeds.
  SQLite waits `lock_timeout` for its write lock; a process frozen while holding it keeps it
  until it resumes or exits (no server can end it), so writes fail with 503 meanwhile.
- **Seeing others' commits.** A cache of what was read (the GET-by-id read cache,
  web/hot_path/readcache.py) must hear of every commit, from any process (which operations it
  changed, store/changes.py says). SQLite tells cheaply: `PRAGMA data_version` on a connection
  that never writes changes whenever another connection commits (`change_token`). PostgreSQL
  has no equally cheap signal known here, so it offers none, and nothing is cached.
- **Files.** A SQLite file (and so its `-wal` and `-shm` files, which SQLite creates with the
  database file's mode) is owner-only, 0600, in a directory made 0700, whatever the umask.

URLs are SQLAlchemy's: `sqlite:///path/to/file.sqlite3`, `postgresql://user:password@host/db`
(or `postgresql+psycopg://...`; query parameters such as `sslmode` or `options` pass through to
libpq). `display_url` renders one without its password: only that form is ever logged.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import AbstractContextManager, closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Dialect, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import ClauseElement, TableClause
from sqlalchemy.sql.compiler import SQLCompiler

from datapolicy.config import ConfigError
from datapolicy.errors import StoreUnreachable, Unavailable

logger = logging.getLogger(__name__)

DEFAULT_POOL_MIN_SIZE = 2
DEFAULT_POOL_MAX_SIZE = 10
DEFAULT_POOL_TIMEOUT_S = 30.0  # PostgreSQL: how long to wait for a free pooled connection
# PostgreSQL: how long the pool goes on retrying one failed connection (its delay doubling each
# time) before it gives up and the next request starts afresh at a 1 s delay. psycopg_pool's
# default, 5 minutes, would let the delay grow to minutes, and the store stay unavailable that
# long after the database is back; at 30 s it lags by at most about 16 s.
POOL_RECONNECT_TIMEOUT_S = 30.0
_MIGRATIONS = Path(__file__).with_name("migrations")
_OWNER_ONLY_FILE = 0o600
_OWNER_ONLY_DIRECTORY = 0o700
# PostgreSQL: the advisory lock migrations hold (any constant; this one spells "datapoli").
_MIGRATION_LOCK = 0x64617461706F6C69

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long a store connection waits before giving up, in seconds (`[store]`).

    `lock`: for a row or table lock (PostgreSQL `lock_timeout`) or SQLite's write lock (its
    busy timeout). `statement`: for any one statement (PostgreSQL `statement_timeout`).
    `idle_in_transaction`: how long PostgreSQL lets a session sit idle inside an open
    transaction before ending it (`idle_in_transaction_session_timeout`): a frozen process's
    locks are released after that. The defaults stay far above what a healthy statement or
    transaction takes (milliseconds; publishing a package inside the completing transaction,
    seconds) and far below what a client waits. `audit_idle`: the same, from the moment a
    transaction locks the audit trail's head (`Database.limit_idle`), which every change in
    every process needs: an appending transaction only runs a few statements and commits, so
    it is never legitimately idle for long, and a frozen appender must release the head before
    its waiters' `lock` runs out (they then wait and succeed instead of failing). The work
    queue's short transactions (claims, heartbeats) use it too: a successor's claim skips the
    row a frozen worker locked until its session ends. None: half of `lock`, at most 2 s."""

    lock: float = 5.0
    statement: float = 30.0
    idle_in_transaction: float = 60.0
    audit_idle: float | None = None

    @property
    def audit_idle_seconds(self) -> float:
        return self.audit_idle if self.audit_idle is not None else min(2.0, self.lock / 2)

    def postgresql_settings(self) -> dict[str, str]:
        """The session settings, in milliseconds as PostgreSQL reads a bare number."""
        return {
            "lock_timeout": str(round(self.lock * 1000)),
            "statement_timeout": str(round(self.statement * 1000)),
            "idle_in_transaction_session_timeout": str(round(self.idle_in_transaction * 1000)),
        }


class DatabaseURLError(ConfigError):
    """A URL the operation store cannot use; the message never contains the password."""


def error_summary(exc: BaseException) -> str:
    """An error's class and the first line of its message, for the log: a driver's message
    goes on for lines (the statement, hints), and clients never see it."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _unavailable(exc: Exception) -> NoReturn:
    """Raise the store's outage error for a driver error that means the database cannot be
    reached or answer now. Clients see a fixed message (the driver's may name hosts); the
    log gets the driver's."""
    logger.warning("operation store unavailable: %s", error_summary(exc))
    raise Unavailable("The operation store is not answering. Try again later.") from exc


def _sqlite_busy(exc: sqlite3.OperationalError) -> bool:
    """SQLite's only outage: another connection kept the database locked past the busy
    timeout. Other operational errors (a missing table, a full disk) are not passing."""
    return str(exc).startswith(("database is locked", "database is busy"))


def compile_statement(statement: ClauseElement, dialect: Dialect) -> tuple[str, dict[str, Any]]:
    """SQL for `dialect` with its bound parameters (named for sqlite3, pyformat for psycopg)."""
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    return str(compiled), compiled.params


class Transaction:
    """An open transaction: statements are compiled for its database and run on its connection."""

    __slots__ = ("_connection", "_dialect")

    def __init__(self, connection: Any, dialect: Dialect):
        self._connection = connection
        self._dialect = dialect

    def fetch_one(self, statement: ClauseElement) -> Row | None:
        sql, params = compile_statement(statement, self._dialect)
        row: Row | None = self._connection.execute(sql, params).fetchone()
        return row

    def fetch_all(self, statement: ClauseElement) -> list[Row]:
        sql, params = compile_statement(statement, self._dialect)
        rows: list[Row] = self._connection.execute(sql, params).fetchall()
        return rows

    def execute(self, statement: ClauseElement) -> int:
        """Run a write statement; returns the number of rows it touched."""
        sql, params = compile_statement(statement, self._dialect)
        touched: int = self._connection.execute(sql, params).rowcount
        return touched

    def execute_compiled(self, sql: str, params: Sequence[Any]) -> int:
        """Run a write statement from `Database.compile_positional` with its parameters in
        order; returns the number of rows it touched."""
        touched: int = self._connection.execute(sql, params).rowcount
        return touched


class Database(ABC):
    """The operation store's database: the seam between the store and SQLite or PostgreSQL."""

    dialect: Dialect
    positional_dialect: Dialect  # the same, with positional parameters
    _insert: Any  # the dialect's insert() construct
    # Whether a read may run on the event loop: true for SQLite (a local file, microseconds),
    # false for PostgreSQL (a network round trip, which would stall every other request).
    blocking_reads_are_cheap: bool
    timeouts: Timeouts
    driver_errors: tuple[type[Exception], ...]  # what the driver raises for a failed statement

    @property
    @abstractmethod
    def url(self) -> str:
        """The database's URL without its password: safe to log."""

    def compile(self, statement: ClauseElement) -> tuple[str, dict[str, Any]]:
        """SQL and parameters for this database; compile a statement run often only once."""
        return compile_statement(statement, self.dialect)

    def compile_positional(self, statement: ClauseElement) -> tuple[str, list[str]]:
        """SQL with positional parameters, and the parameters' names in their order: for a
        statement with hundreds of parameters (a multi-row INSERT), which `sqlite3` binds
        many times faster by position than by name. Run it with `execute_compiled`."""
        compiled = statement.compile(
            dialect=self.positional_dialect, compile_kwargs={"render_postcompile": True}
        )
        assert isinstance(compiled, SQLCompiler)  # a statement's compiler, not DDL's
        return str(compiled), list(compiled.positiontup or ())

    def insert(self, table: TableClause) -> Any:
        """An INSERT of this database's dialect: it has `on_conflict_do_nothing`, which SQLite
        and PostgreSQL both support, with the same meaning."""
        return self._insert(table)

    @abstractmethod
    def migrate(self) -> None:
        """Bring the schema to the newest revision (a no-op when it is already there)."""

    @abstractmethod
    def fetch_one(self, sql: str, params: dict[str, Any] | Sequence[Any]) -> Row | None:
        """Run precompiled SQL (from `compile`) and return its first row."""

    def fetch_all(self, statement: ClauseElement) -> list[Row]:
        return self.fetch_rows(*self.compile(statement))

    @abstractmethod
    def fetch_rows(self, sql: str, params: dict[str, Any]) -> list[Row]:
        """Run precompiled SQL (from `compile`) and return all its rows."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Transaction]:
        """A transaction, committed unless the block raises (see the module's docstring)."""

    @abstractmethod
    def snapshot(self) -> AbstractContextManager[Transaction]:
        """A read-only transaction whose every read sees the database as of its first one, and
        which takes no lock a writer waits for: for reading many rows that must agree with
        each other while others write (the audit trail's `verify` on a live service)."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def limit_idle(self, transaction: Transaction) -> None:
        """For the rest of `transaction`, end it (and the session) if it sits idle longer than
        `timeouts.audit_idle_seconds`: called before taking a lock that every writer needs (the
        audit trail's head) or that other workers skip (a work queue row, store/queue.py), so
        that a process frozen while holding it holds up the others for that long at most.
        PostgreSQL only: SQLite's locks are the file's, held by the process until it resumes or
        exits, and nothing can take them away (docs/security.md)."""

    @abstractmethod
    def ping(self, timeout: float) -> None:
        """Raise unless the database answers a trivial query within about `timeout` seconds:
        the readiness check (`GET /readyz`), so cheap enough to run every few seconds."""

    @abstractmethod
    def ping_writable(self, timeout: float, lock: str | None = None) -> None:
        """Raise unless a write transaction can begin within about `timeout` seconds (and, on
        PostgreSQL, take the row lock of the precompiled `lock` statement): the readiness check
        of a database that answers reads but cannot take writes (locked by a stalled writer,
        read-only after a failover). Nothing is written: the transaction is rolled back."""

    @abstractmethod
    def change_token(self) -> Callable[[], Hashable] | None:
        """A function whose value changes whenever anything is committed to the database, by
        any connection of any process, cheap enough to call on every request: whoever caches
        what it read looks at what changed whenever the value changes. A value that cannot be
        read counts as a change (it equals no other). None when the database offers no such
        function, and then nothing may be cached."""

    def execute(self, statement: ClauseElement) -> int:
        """Run a write statement in its own transaction; returns the number of rows it touched."""
        with self.transaction() as transaction:
            return transaction.execute(statement)

    def revision(self) -> str | None:
        """The schema's Alembic revision (`datapolicy db current`); None before the first
        migration."""
        engine = create_engine(self._engine_url(), poolclass=NullPool)
        try:
            with engine.connect() as connection:
                return MigrationContext.configure(connection).get_current_revision()
        finally:
            engine.dispose()

    @abstractmethod
    def _engine_url(self) -> str | URL:
        """The URL a SQLAlchemy engine (for Alembic) connects with, password included."""

    def _upgrade(self, connection: Connection) -> None:
        config = _alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest schema revision this version of datapolicy migrates to."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


@contextmanager
def _migration_lock(path: Path) -> Iterator[None]:
    """Held while the SQLite database at `path` is migrated: processes that start together on
    a new data directory migrate one after the other, and the later ones find the schema
    current (as PostgreSQL's advisory lock does), instead of both creating its tables. A file of
    its own, locked with flock: the database file is SQLite's to lock, and closing any
    descriptor of it would drop SQLite's own POSIX locks in this process."""
    lock = path.with_name(path.name + "-migrate.lock")  # 0600, kept: deleting it would race
    descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, _OWNER_ONLY_FILE)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _owner_only(path: Path) -> None:
    """Make the database file owner-only (0600) before SQLite first opens it, and its directory
    0700, whatever the umask; files an earlier version left readable to others are narrowed.
    SQLite gives the `-wal`, `-shm` and journal files it creates the database file's mode, so
    they follow. Every write a store makes (SAS signatures in storage locations, the audit
    trail) is then readable by the service's user alone."""
    directory = path.parent
    try:  # another process starting on the same new directory may make it first
        directory.mkdir(parents=True, mode=_OWNER_ONLY_DIRECTORY)
    except FileExistsError:
        pass
    else:
        os.chmod(directory, _OWNER_ONLY_DIRECTORY)  # mkdir's mode passes through the umask
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, _OWNER_ONLY_FILE)
    try:
        os.fchmod(descriptor, _OWNER_ONLY_FILE)
    finally:
        os.close(descriptor)
    for suffix in ("-wal", "-shm", "-journal"):
        # Another process on the same file may delete a companion at any moment (SQLite
        # removes the journal after each transaction, the WAL and -shm when its last
        # connection closes): chmod it if it is there, without asking first.
        with suppress(FileNotFoundError):
            os.chmod(path.with_name(path.name + suffix), _OWNER_ONLY_FILE)


class SQLiteDatabase(Database):
    """A SQLite database file, with a connection per thread."""

    dialect = sqlite.dialect(paramstyle="named")
    positional_dialect = sqlite.dialect(paramstyle="qmark")
    _insert = staticmethod(sqlite.insert)
    blocking_reads_are_cheap = True
    driver_errors = (sqlite3.Error,)

    def __init__(self, path: Path, timeouts: Timeouts = Timeouts()):
        self.path = path
        self.timeouts = timeouts
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def _engine_url(self) -> str:
        return self.url

    def revision(self) -> str | None:
        if not self.path.exists():  # connecting would create it
            return None
        return super().revision()

    def migrate(self) -> None:
        try:
            _owner_only(self.path)
            with _migration_lock(self.path):
                self._migrate()
        except (OSError, sqlite3.DatabaseError) as exc:  # no directory, no access, not SQLite
            reason = f"{exc.strerror}: {exc.filename}" if isinstance(exc, OSError) else exc
            raise StoreUnreachable(
                f"cannot open the operation store at {self.url}: {reason}"
            ) from None

    def _migrate(self) -> None:
        # WAL is a property of the file, kept once set: set here, once, and not on every new
        # connection. Setting it (even asking for it) on a connection can fail at once with
        # "database is locked", busy timeout or not, while another connection is writing, and
        # the API opens a connection per thread, lazily, under load.
        with closing(sqlite3.connect(self.path, timeout=self.timeouts.lock)) as connection:
            if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
        engine = create_engine(self.url, poolclass=NullPool)
        try:
            with engine.begin() as connection:
                self._upgrade(connection)
        finally:
            engine.dispose()

    def connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=self.timeouts.lock,
            )
            # Settings of this connection only, which touch no file (WAL: `migrate`).
            connection.execute("PRAGMA synchronous=NORMAL")
            # OData's startswith/endswith/contains are case-sensitive; SQLite's LIKE is not,
            # unless told so (PostgreSQL's LIKE is).
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

    def fetch_one(self, sql: str, params: dict[str, Any] | Sequence[Any]) -> Row | None:
        try:
            row: Row | None = self.connection().execute(sql, params).fetchone()
            return row
        except sqlite3.OperationalError as exc:
            if _sqlite_busy(exc):
                _unavailable(exc)
            raise

    def ping(self, timeout: float) -> None:
        """On a new read-only connection, not the thread's: an open connection goes on reading
        a file that was deleted or replaced, but every connection opened later (new threads,
        other processes) would fail. Reading the schema version reads the file's header, so a
        file that is not a database fails too. Costs a fraction of a millisecond."""
        uri = f"{self.path.absolute().as_uri()}?mode=ro"
        connection = sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False)
        try:
            connection.execute("PRAGMA schema_version").fetchone()
        finally:
            connection.close()

    def limit_idle(self, transaction: Transaction) -> None:
        """Nothing can: the write lock is the file's, held by the process until it resumes or
        exits."""

    def ping_writable(self, timeout: float, lock: str | None = None) -> None:
        """SQLite's write lock, on a new connection (as `ping`); `lock` is not needed: the
        database's write lock is the only lock."""
        uri = f"{self.path.absolute().as_uri()}?mode=rw"
        connection = sqlite3.connect(
            uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
        finally:
            connection.close()

    def change_token(self) -> Callable[[], Hashable]:
        """`PRAGMA data_version` on a connection of the token's own (`DataVersion`)."""
        return DataVersion(self.path)

    def fetch_rows(self, sql: str, params: dict[str, Any]) -> list[Row]:
        try:
            return self.connection().execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if _sqlite_busy(exc):
                _unavailable(exc)
            raise

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """An immediate (write-locking) transaction, committed unless the block raises. Only
        BEGIN waits for other writers (the lock is held from then on), so only a BEGIN that
        waited past the busy timeout is an outage."""
        try:
            connection = self.connection()
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _sqlite_busy(exc):
                _unavailable(exc)
            raise
        try:
            yield Transaction(connection, self.dialect)
            connection.execute("COMMIT")
        except BaseException:
            # SQLite may have rolled back already (SQLITE_FULL, an I/O error): a ROLLBACK
            # then fails and would hide the error; a failed COMMIT leaves it open.
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    @contextmanager
    def snapshot(self) -> Iterator[Transaction]:
        """A deferred transaction: in WAL mode its first read fixes what it sees, and readers
        never block the writer."""
        connection = self.connection()
        connection.execute("BEGIN")
        try:
            yield Transaction(connection, self.dialect)
        finally:
            connection.execute("ROLLBACK")


class DataVersion:
    """A value that changes whenever anything is committed to a SQLite database: `PRAGMA
    data_version` on a connection of its own, which never writes (the value changes when
    another connection commits, in this process or another). The connection is opened when
    first needed and closed when the token is collected."""

    def __init__(self, path: Path):
        self._path = path
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._cursor: sqlite3.Cursor | None = None  # the connection's, kept: one per check cost
        weakref.finalize(self, _close_all, self._connections)

    def __call__(self) -> Hashable:
        try:
            with self._lock:
                if self._cursor is None:
                    connection = sqlite3.connect(
                        self._path, isolation_level=None, check_same_thread=False
                    )
                    self._connections.append(connection)
                    self._cursor = connection.cursor()
                # fetchone() steps the statement to its end, which ends the read transaction:
                # the connection holds no snapshot between checks (it would stop WAL
                # checkpoints).
                version: int = self._cursor.execute("PRAGMA data_version").fetchone()[0]
                return version
        except sqlite3.Error:
            return object()  # unknown: a change


def _close_all(connections: list[sqlite3.Connection]) -> None:
    for connection in connections:
        connection.close()


class PostgreSQLDatabase(Database):
    """A PostgreSQL database, through a pool of psycopg connections in autocommit mode."""

    dialect = postgresql.psycopg.dialect()
    positional_dialect = postgresql.psycopg.dialect(paramstyle="format")
    _insert = staticmethod(postgresql.insert)
    blocking_reads_are_cheap = False

    def __init__(
        self,
        url: str | URL,
        *,
        pool_min_size: int = DEFAULT_POOL_MIN_SIZE,
        pool_max_size: int = DEFAULT_POOL_MAX_SIZE,
        pool_timeout: float = DEFAULT_POOL_TIMEOUT_S,
        timeouts: Timeouts = Timeouts(),
    ):
        import psycopg  # imported here: the SQLite default never needs them
        from psycopg_pool import ConnectionPool

        self._url = make_url(url).set(drivername="postgresql+psycopg")
        _, arguments = self.dialect.create_connect_args(self._url)
        arguments.setdefault("application_name", "datapolicy")
        self._local = threading.local()
        self._operational_error = psycopg.OperationalError
        # A transaction ended by the server for sitting idle too long (a paused process) did
        # not happen, as one on a dropped connection did not.
        self._transaction_outages = (
            psycopg.OperationalError,
            psycopg.errors.IdleInTransactionSessionTimeout,
        )
        self.driver_errors = (psycopg.Error,)

        self.timeouts = timeouts
        settings = timeouts.postgresql_settings()

        def configure(connection: psycopg.Connection[Any]) -> None:
            connection.autocommit = True
            # The server's default, stated: transactions here are written for it.
            connection.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
            # Bounded waits, for the session (see the module's docstring).
            for name, value in settings.items():
                connection.execute("SELECT set_config(%s, %s, false)", (name, value))

        self._pool = ConnectionPool(
            kwargs={**arguments, "autocommit": True},
            min_size=pool_min_size,
            max_size=pool_max_size,
            timeout=pool_timeout,
            reconnect_timeout=POOL_RECONNECT_TIMEOUT_S,
            configure=configure,
            name="datapolicy-store",
            open=False,
        )
        self._pool.open()

    @property
    def url(self) -> str:
        return self._url.render_as_string(hide_password=True)

    def _engine_url(self) -> URL:
        return self._url

    def migrate(self) -> None:
        engine = create_engine(self._url, poolclass=NullPool)
        try:
            with engine.begin() as connection:
                # Processes that start together migrate one after the other; the later ones
                # find the schema current. Released when the transaction ends.
                lock = text("SELECT pg_advisory_xact_lock(:key)")
                connection.execute(lock, {"key": _MIGRATION_LOCK})
                self._upgrade(connection)
        finally:
            engine.dispose()

    def close(self) -> None:
        self._pool.close()

    def fetch_one(self, sql: str, params: dict[str, Any] | Sequence[Any]) -> Row | None:
        connection = getattr(self._local, "connection", None)
        row: Row | None
        if connection is not None:  # inside transaction(), which maps its errors
            row = connection.execute(sql, params).fetchone()
        else:
            row = self._read(sql, params, all_rows=False)
        return row

    def fetch_rows(self, sql: str, params: dict[str, Any]) -> list[Row]:
        connection = getattr(self._local, "connection", None)
        rows: list[Row]
        if connection is not None:
            rows = connection.execute(sql, params).fetchall()
        else:
            rows = self._read(sql, params, all_rows=True)
        return rows

    def ping(self, timeout: float) -> None:
        """`SELECT 1` on a pooled connection, waiting at most `timeout` for one (not the pool's
        own timeout: a readiness check must answer before the load balancer gives up). A pooled
        connection found broken (the server restarted) is replaced and the query tried once
        more, as reads are."""
        retried = False
        while True:
            with self._pool.connection(timeout=timeout) as connection:
                try:
                    connection.execute("SELECT 1").fetchone()
                    return
                except self._operational_error:
                    if retried or not connection.broken:
                        raise
            retried = True

    def limit_idle(self, transaction: Transaction) -> None:
        """`SET LOCAL idle_in_transaction_session_timeout`: the server ends a session frozen
        past it, which releases its locks (it cannot end one frozen inside a statement:
        `statement_timeout` bounds that)."""
        milliseconds = str(max(round(self.timeouts.audit_idle_seconds * 1000), 1))
        transaction.execute_compiled(
            "SELECT set_config('idle_in_transaction_session_timeout', %s, true)", (milliseconds,)
        )

    def ping_writable(self, timeout: float, lock: str | None = None) -> None:
        """A transaction that must not be read-only (a standby, or a primary demoted after a
        failover) and must get `lock`'s row lock within `timeout`, then rolls back."""
        import psycopg

        with self._pool.connection(timeout=timeout) as connection, connection.transaction():
            wait = str(max(round(timeout * 1000), 1))
            connection.execute("SELECT set_config('lock_timeout', %s, true)", (wait,))
            row = connection.execute("SHOW transaction_read_only").fetchone()
            if row is not None and row[0] == "on":
                raise RuntimeError("the database is read-only")
            if lock is not None:
                connection.execute(lock).fetchall()
            raise psycopg.Rollback()

    def change_token(self) -> None:
        """None: no signal of other sessions' commits is known here that costs less than the
        read it would save (a round trip either way)."""
        return None

    def _read(self, sql: str, params: Any, *, all_rows: bool) -> Any:
        """A read outside any transaction; tried once more on another connection if the pooled
        one turns out to be broken (the server restarted, a proxy dropped it): reads are safe
        to repeat, and the pool discards a broken connection when it is given back."""
        retried = False
        try:
            while True:
                with self._pool.connection() as connection:
                    try:
                        cursor = connection.execute(sql, params)
                        return cursor.fetchall() if all_rows else cursor.fetchone()
                    except self._operational_error:
                        if retried or not connection.broken:
                            raise
                retried = True
        except self._operational_error as exc:  # PoolTimeout is one too
            _unavailable(exc)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A READ COMMITTED transaction, committed unless the block raises. An operational
        error anywhere in it (no connection, a dropped one, a failed commit) is an outage:
        the transaction did not happen, or (a lost commit) the caller cannot know, as with
        any lost response."""
        if getattr(self._local, "connection", None) is not None:
            raise RuntimeError("a transaction is already open on this thread")
        try:
            with self._pool.connection() as connection:
                self._local.connection = connection
                try:
                    with connection.transaction():
                        yield Transaction(connection, self.dialect)
                finally:
                    self._local.connection = None
        except self._transaction_outages as exc:
            _unavailable(exc)

    @contextmanager
    def snapshot(self) -> Iterator[Transaction]:
        """A REPEATABLE READ, READ ONLY transaction: one snapshot for all its statements."""
        with self.transaction() as transaction:
            transaction.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
            yield transaction


def parse_url(url: str) -> URL:
    """The store's URL, checked: SQLite with a file, or PostgreSQL through psycopg."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseURLError("the operation store's URL is not a database URL") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        if (
            not parsed.database
            or parsed.database == ":memory:"
            or parsed.database.startswith("file:")
        ):
            raise DatabaseURLError(
                "the operation store's SQLite URL must name a file (sqlite:///path/to/file)"
            )
        return parsed
    if backend in ("postgresql", "postgres") and driver in ("", "psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    raise DatabaseURLError(
        f"the operation store runs on SQLite (sqlite:///FILE) or PostgreSQL "
        f"(postgresql://USER@HOST/DB), not {parsed.drivername}"
    )


def display_url(url: str) -> str:
    """`url` without its password, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a database URL)"


def open_database(
    url: str,
    *,
    pool_min_size: int = DEFAULT_POOL_MIN_SIZE,
    pool_max_size: int = DEFAULT_POOL_MAX_SIZE,
    pool_timeout: float = DEFAULT_POOL_TIMEOUT_S,
    timeouts: Timeouts = Timeouts(),
) -> Database:
    """The database at `url` (not yet migrated); pool sizes apply to PostgreSQL."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        assert parsed.database is not None
        return SQLiteDatabase(Path(parsed.database), timeouts)
    return PostgreSQLDatabase(
        parsed,
        pool_min_size=pool_min_size,
        pool_max_size=pool_max_size,
        pool_timeout=pool_timeout,
        timeouts=timeouts,
    )
