"""Real database servers for tests, and the one policy for when one cannot be reached.

PostgreSQL and MariaDB run beside the tests (locally and in CI). Tests use them for real; each
test gets a scratch namespace of its own (a PostgreSQL schema, a MariaDB database, a SQLite file)
that is created for it and dropped after it, so repeated and parallel runs never collide.

The policy: when a server cannot be reached, the test FAILS under `CI=true` (CI must never pass
by skipping the databases it is there to test) and is skipped with the reason otherwise. The
server URLs can be overridden with `DATAPOLICY_TEST_POSTGRESQL_URL` and
`DATAPOLICY_TEST_MARIADB_URL`.

The operation store itself runs on SQLite and PostgreSQL (`STORE_KINDS`): `store_database` gives a
migrated store database of a test's own, `store_url` the URL for a service's `--database`. On
PostgreSQL both are schemas in one database the session creates (and drops at its end, in
`close_session`), whose default collation is not byte order (ICU's en-US, when the server has
ICU): the store must not depend on the database's defaults.

Test modules import this module by name (`from databases import scratch_database`), as
tests/conftest.py puts the tests directory on `sys.path`.
"""

from __future__ import annotations

import functools
import os
import re
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from datapolicy.store import Database, PostgreSQLDatabase, SQLiteDatabase
from datapolicy.store.audit import AuditLog
from datapolicy.store.database import Timeouts

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
MARIADB = "mariadb"
KINDS = (SQLITE, POSTGRESQL, MARIADB)
STORE_KINDS = (SQLITE, POSTGRESQL)  # what the operation store runs on

DEFAULT_URLS = {
    POSTGRESQL: "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    MARIADB: "mysql+pymysql://root@127.0.0.1:3306/test",
}
CONNECT_TIMEOUT_S = 5


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def server_url(kind: str) -> URL:
    """The URL of the `kind` server, after checking it answers (see the policy above)."""
    url = os.environ.get(f"DATAPOLICY_TEST_{kind.upper()}_URL") or DEFAULT_URLS[kind]
    problem = _unreachable(url)
    if problem is not None:
        reason = f"{kind} server at {make_url(url).render_as_string()} is unreachable: {problem}"
        if in_ci():
            pytest.fail(f"{reason} (CI=true: a database server that is down is a failure)")
        pytest.skip(reason)
    return make_url(url)


@functools.cache
def _unreachable(url: str) -> str | None:
    """Why the server cannot be used, or None; asked once per process and server."""
    timeout = {"connect_timeout": CONNECT_TIMEOUT_S}
    engine = create_engine(url, connect_args=timeout)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300]
    finally:
        engine.dispose()
    return None


def scratch_name() -> str:
    """A schema or database name no other run uses."""
    return f"dp_test_{uuid.uuid4().hex[:12]}"


@contextmanager
def scratch_database(kind: str, directory: Path, *, within: URL | None = None) -> Iterator[str]:
    """The URL of an empty database namespace of the test's own, dropped afterwards.

    SQLite: a new file in `directory`. PostgreSQL: a new schema (in the database `within`, by
    default the server's), made the connection's search_path (so unqualified table names land
    in it). MariaDB: a new database."""
    if kind == SQLITE:
        directory.mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{directory / f'{scratch_name()}.sqlite3'}"
        return
    server = within or server_url(kind)
    name = scratch_name()
    if kind == POSTGRESQL:
        url = server.update_query_dict({"options": f"-csearch_path={name}"})
        create, drop = f'CREATE SCHEMA "{name}"', f'DROP SCHEMA IF EXISTS "{name}" CASCADE'
    elif kind == MARIADB:
        url = server.set(database=name)
        create, drop = f"CREATE DATABASE `{name}`", f"DROP DATABASE IF EXISTS `{name}`"
    else:
        raise ValueError(f"unknown database kind {kind!r}")
    # No pool: a namespace the session keeps (`store_url`) would keep an idle connection open
    # in this process until the session ends, and a session makes hundreds of them.
    admin = create_engine(server, poolclass=NullPool)
    try:
        with admin.begin() as connection:
            connection.execute(text(create))
        try:
            yield url.render_as_string(hide_password=False)
        finally:
            with admin.begin() as connection:
                connection.execute(text(drop))
    finally:
        admin.dispose()


def run_script(url: str, script: Path) -> None:
    """A SQL script (statements ending with `;` at the end of a line, `--` comment lines) run
    in one transaction on the database at `url`."""
    statements = re.sub(r"(?m)^--.*$", "", script.read_text(encoding="utf-8")).split(";\n")
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            for statement in filter(str.strip, statements):
                connection.execute(text(statement))
    finally:
        engine.dispose()


# --- the operation store ----------------------------------------------------------------------

_session = ExitStack()  # what the session made on servers; closed by tests/conftest.py
_store_urls: dict[Path, str] = {}


def close_session() -> None:
    """Drop what the session made on database servers (pytest_sessionfinish calls this)."""
    _session.close()
    _store_urls.clear()
    _postgresql_store_database.cache_clear()


@functools.cache
def _postgresql_store_database() -> URL:
    """The session's PostgreSQL database for operation stores, made on first use."""
    return _session.enter_context(_new_postgresql_database())


@contextmanager
def _new_postgresql_database() -> Iterator[URL]:
    server = server_url(POSTGRESQL)
    name = scratch_name()
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as connection:
            try:
                connection.execute(
                    text(
                        f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' "
                        "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
                    )
                )
            except SQLAlchemyError:  # a server without ICU (or older than 15)
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield server.set(database=name)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextmanager
def store_database(
    kind: str, directory: Path, timeouts: Timeouts | None = None
) -> Iterator[Database]:
    """A migrated operation store database of the test's own, closed and dropped afterwards
    (with `timeouts`, or the defaults)."""
    timeouts = timeouts or Timeouts()
    with scratch_database(kind, directory, within=store_server(kind)) as url:
        database: Database
        if kind == SQLITE:
            database = SQLiteDatabase(Path(make_url(url).database or ""), timeouts)
        else:
            database = PostgreSQLDatabase(url, pool_min_size=1, pool_max_size=8, timeouts=timeouts)
        try:
            database.migrate()
            yield database
        finally:
            database.close()


def store_url(kind: str, data_dir: Path) -> str | None:
    """The `--database` for processes on `data_dir` (the same for each of them), or None for
    SQLite in the data directory. PostgreSQL: a schema, dropped when the session ends."""
    if kind == SQLITE:
        return None
    if data_dir not in _store_urls:
        _store_urls[data_dir] = _session.enter_context(
            scratch_database(kind, data_dir, within=store_server(kind))
        )
    return _store_urls[data_dir]


def store_server(kind: str) -> URL | None:
    """The database that store schemas are made in (PostgreSQL), or None (SQLite: files)."""
    return _postgresql_store_database() if kind == POSTGRESQL else None


@contextmanager
def holding_the_audit_head(log: AuditLog) -> Iterator[None]:
    """Another session holds what every append to `log` must lock, until the block ends (see
    `holding_audit_lock`)."""
    database = log.database
    if isinstance(database, SQLiteDatabase):
        with holding_audit_lock(database.path):
            yield
        return
    assert isinstance(database, PostgreSQLDatabase)
    with holding_audit_lock(database._engine_url().render_as_string(hide_password=False)):
        yield


@contextmanager
def holding_audit_lock(trail: Path | str) -> Iterator[None]:
    """Another session holds what every audit append must lock, until the block ends: SQLite's
    write lock on the trail's file (a Path); on PostgreSQL (a URL) the head row, `SELECT ...
    FOR UPDATE` (what a process frozen mid-append holds)."""
    if isinstance(trail, Path):
        other = sqlite3.connect(trail, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            yield
            other.execute("ROLLBACK")
        finally:
            other.close()
        return
    libpq = make_url(trail).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq) as other:
        other.execute("SELECT sequence FROM audit_head WHERE id = 1 FOR UPDATE").fetchall()
        yield
        other.rollback()
        other.rollback()


# Fixtures (registered for every test by `pytest_plugins` in tests/conftest.py).


@pytest.fixture(params=KINDS, scope="module")
def namespace(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Engine]]:
    """A scratch namespace of each source database and an engine on it, for a whole module
    (the generated-schema tests: selection and erasure)."""
    with scratch_database(request.param, tmp_path_factory.mktemp("namespace")) as url:
        engine = create_engine(url)
        try:
            yield url, engine
        finally:
            engine.dispose()


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database(store_kind: str, tmp_path: Path) -> Iterator[Database]:
    """A migrated store of the test's own, on SQLite and on PostgreSQL."""
    with store_database(store_kind, tmp_path) as db:
        yield db
