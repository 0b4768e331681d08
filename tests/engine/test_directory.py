"""The user directory's connections: queries run in autocommit without a ping before each, so a
pooled connection the database server has closed must be found by the query that fails on it,
and the query run once more on a new connection (engine/directory.py `_run`)."""

from __future__ import annotations

from pathlib import Path

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from databases import POSTGRESQL, scratch_database
from datapolicy.config import DirectoryConfig
from datapolicy.engine.directory import UserDirectory
from datapolicy.odata.entity import USERS
from datapolicy.odata.options import parse_query_options


def test_a_connection_the_server_closed_is_replaced_without_an_error(tmp_path: Path):
    with scratch_database(POSTGRESQL, tmp_path) as url:
        engine = create_engine(url, poolclass=NullPool)
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE people (id VARCHAR(64) PRIMARY KEY, mail TEXT)"))
            connection.execute(text("INSERT INTO people VALUES ('ada', 'Ada@example.com')"))
        engine.dispose()
        directory = UserDirectory(DirectoryConfig(url=url, table="people", mail_column="mail"))
        options = parse_query_options(
            [("$filter", "mail eq 'ada@EXAMPLE.com'")], frozenset({"filter"}), entity=USERS
        )
        try:
            assert [u.id for u in directory.query(options, 10).users] == ["ada"]
            # Every backend but this one's: the directory's pooled connection among them.
            server = make_url(url).set(query={}).set(drivername="postgresql")
            with psycopg.connect(server.render_as_string(hide_password=False)) as admin:
                closed = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND application_name = '' AND query LIKE '%people%'"
                ).fetchone()
            assert closed is not None
            assert closed[0] >= 1
            assert [u.id for u in directory.query(options, 10).users] == ["ada"]
            assert directory.find("ada") is not None
        finally:
            directory.close()
