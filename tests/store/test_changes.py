"""store/changes.py and migration 0014's triggers: every committed insert, update and delete of
an operation's row, by any connection of any process, names that operation in the change log,
and nothing else does; a reader that falls behind the pruning is told that anything may have
changed."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from datapolicy.store import SQLiteDatabase
from datapolicy.store import database as store_database_module
from datapolicy.store.changes import TRIGGERS, ChangeLog, Changes, Position

MIGRATIONS = Path(store_database_module.__file__).with_name("migrations")
KEEP = 4096  # migration 0014's: the entries the triggers keep at least


def _store(path: Path) -> SQLiteDatabase:
    database = SQLiteDatabase(path)
    database.migrate()
    return database


def _insert(connection: sqlite3.Connection, operation_id: str) -> None:
    connection.execute(
        "INSERT INTO operations (id, user_id, status, progress, submitted_at, version) "
        "VALUES (?, 'u', 'notStarted', 0, 0, 1)",
        (operation_id,),
    )


def test_the_head_revision_has_the_triggers(tmp_path: Path):
    """A later revision that rebuilds `operations` on SQLite drops its triggers: it must make
    them again, or the read cache would keep what a commit changed."""
    database = _store(tmp_path / "store.sqlite3")
    with sqlite3.connect(database.path) as connection:
        names = {
            name
            for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='trigger'")
        }
    assert names >= set(TRIGGERS)
    database.close()


def test_another_process_s_writes_are_named(tmp_path: Path):
    database = _store(tmp_path / "store.sqlite3")
    log = ChangeLog(database)
    start = log.since(None)
    assert start.operations is None  # a first read cannot tell what changed before it
    script = (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        'c.execute("INSERT INTO operations (id, user_id, status, progress, submitted_at, version)'
        " VALUES ('a', 'u', 'notStarted', 0, 0, 1)\")\n"
        "c.execute(\"UPDATE operations SET progress = 50 WHERE id = 'a'\")\n"
        'c.execute("INSERT INTO operations (id, user_id, status, progress, submitted_at, version)'
        " VALUES ('b', 'u', 'notStarted', 0, 0, 1)\")\n"
        "c.execute(\"DELETE FROM operations WHERE id = 'b'\")\n"
    )
    subprocess.run([sys.executable, "-c", script, str(database.path)], check=True)
    changes = log.since(start.seen)
    assert changes.operations == {"a", "b"}
    assert changes.seen == Position(start.seen.schema, start.seen.seq + 4)
    assert log.since(changes.seen).operations == frozenset()
    database.close()


def test_a_reader_behind_the_pruning_is_told_anything_may_have_changed(tmp_path: Path):
    database = _store(tmp_path / "store.sqlite3")
    log = ChangeLog(database)
    start = log.since(None)
    with sqlite3.connect(database.path, isolation_level=None) as connection:
        _insert(connection, "kept")
        after_first = log.since(start.seen)
        assert after_first.operations == {"kept"}
        connection.execute("BEGIN")
        for _ in range(KEEP + 256):  # one transaction: the pruning runs inside it
            connection.execute("UPDATE operations SET version = version + 1 WHERE id = 'kept'")
        connection.execute("COMMIT")
        (entries,) = connection.execute("SELECT count(*) FROM operation_changes").fetchone()
    assert KEEP <= entries < KEEP + 256
    behind = log.since(after_first.seen)
    assert behind.operations is None
    assert behind.seen.seq == after_first.seen.seq + KEEP + 256
    database.close()


def test_a_log_that_cannot_be_read_tells_nothing(tmp_path: Path):
    database = _store(tmp_path / "store.sqlite3")
    log = ChangeLog(database)
    with sqlite3.connect(database.path) as connection:
        connection.execute("DROP TABLE operation_changes")
    changes = log.since(Position(1, 7))
    assert changes == Changes(None, None)  # and the next read starts from the log's end
    assert log.since(None) == Changes(None, None)
    database.close()


# A generated history of writes by two connections, each step in a transaction of its own or
# together with the next ones, committed or rolled back, with reads of the log between them.
_ID = st.sampled_from("abcdef")
_WRITE = st.one_of(
    st.tuples(st.just("insert"), _ID),
    st.tuples(st.just("update"), _ID),
    st.tuples(st.just("delete"), _ID),
    st.tuples(st.just("rename"), _ID, _ID),
    # INSERT OR REPLACE / UPDATE OR REPLACE: a row that holds the idempotency key goes
    st.tuples(st.sampled_from(["replace", "rekey"]), _ID, st.sampled_from("xy")),
)
_STEP = st.one_of(
    st.tuples(
        st.just("write"), st.integers(0, 1), st.lists(_WRITE, min_size=1, max_size=4), st.booleans()
    ),
    st.tuples(st.just("read")),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(_STEP, max_size=25))
@example(steps=[("write", 1, [("rename", "a", "f")], True)])
def test_the_log_names_exactly_the_operations_committed_writes_touched(tmp_path_factory, steps):
    """Reference: the ids whose rows a committed statement inserted, changed or deleted, as
    the statements' own row counts say."""
    database = _store(tmp_path_factory.mktemp("changes") / "store.sqlite3")
    log = ChangeLog(database)
    connections = [sqlite3.connect(database.path, isolation_level=None) for _ in range(2)]
    try:
        for operation_id in "abc":  # half the ids the writes name exist at first
            _insert(connections[0], operation_id)
        seen = log.since(None).seen
        expected: set[str] = set()
        for step in [*steps, ("read",)]:
            if step[0] == "read":
                changes = log.since(seen)
                assert changes.operations == expected, steps
                seen, expected = changes.seen, set()
                continue
            _, which, writes, commit = step
            connection = connections[which]
            connection.execute("BEGIN IMMEDIATE")
            touched: set[str] = set()
            for write in writes:
                touched |= _apply(connection, write)
            connection.execute("COMMIT" if commit else "ROLLBACK")
            if commit:
                expected |= touched
    finally:
        for connection in connections:
            connection.close()
        database.close()


def _apply(connection: sqlite3.Connection, write: tuple[str, ...]) -> set[str]:
    kind, operation_id = write[0], write[1]
    exists = connection.execute("SELECT 1 FROM operations WHERE id = ?", (operation_id,))
    present = exists.fetchone() is not None
    if kind == "insert":
        if present:
            return set()
        _insert(connection, operation_id)
        return {operation_id}
    if kind == "update":
        cursor = connection.execute(
            "UPDATE operations SET progress = progress + 1 WHERE id = ?", (operation_id,)
        )
        return {operation_id} if cursor.rowcount else set()
    if kind == "delete":
        cursor = connection.execute("DELETE FROM operations WHERE id = ?", (operation_id,))
        return {operation_id} if cursor.rowcount else set()
    if kind in ("replace", "rekey"):
        return _replace(connection, kind, operation_id, write[2], present)
    new_id = write[2]
    taken = connection.execute("SELECT 1 FROM operations WHERE id = ?", (new_id,)).fetchone()
    if not present or (taken is not None and new_id != operation_id):
        return set()
    connection.execute("UPDATE operations SET id = ? WHERE id = ?", (new_id, operation_id))
    return {operation_id, new_id}


def _replace(
    connection: sqlite3.Connection, kind: str, operation_id: str, key: str, present: bool
) -> set[str]:
    holders = {
        holder
        for (holder,) in connection.execute(
            "SELECT id FROM operations WHERE idempotency_key = ?", (key,)
        )
    }
    if kind == "replace":
        connection.execute(
            "INSERT OR REPLACE INTO operations "
            "(id, user_id, status, progress, submitted_at, version, idempotency_key) "
            "VALUES (?, 'u', 'notStarted', 0, 0, 1, ?)",
            (operation_id, key),
        )
        return holders | {operation_id}
    if not present:
        return set()
    connection.execute(
        "UPDATE OR REPLACE operations SET idempotency_key = ? WHERE id = ?", (key, operation_id)
    )
    return holders | {operation_id}


def test_an_empty_log(tmp_path: Path):
    database = _store(tmp_path / "store.sqlite3")
    log = ChangeLog(database)
    start = log.since(None)
    assert start.seen is not None
    assert start.seen.seq == 0
    assert start.operations is None
    assert log.since(start.seen).operations == frozenset()
    database.close()


def _seen_after_a_write(log: ChangeLog, path: Path) -> Position:
    start = log.since(None).seen
    with sqlite3.connect(path, isolation_level=None) as connection:
        _insert(connection, "a")
    changes = log.since(start)
    assert changes.operations == {"a"}
    assert changes.seen is not None
    return changes.seen


def test_a_restored_older_copy_is_told_anything_may_have_changed(tmp_path: Path):
    """A restore through SQLite's backup API brings an older log, numbered lower than what the
    reader saw: its entries would otherwise be taken as read."""
    database = _store(tmp_path / "store.sqlite3")
    older = tmp_path / "older.sqlite3"
    with sqlite3.connect(database.path) as live, sqlite3.connect(older) as copy:
        live.backup(copy)
    log = ChangeLog(database)
    seen = _seen_after_a_write(log, database.path)
    with sqlite3.connect(older) as copy, sqlite3.connect(database.path) as live:
        copy.backup(live)
    restored = log.since(seen)
    assert restored.operations is None
    assert log.since(restored.seen).operations == frozenset()
    database.close()


def test_a_migration_down_and_up_is_told_anything_may_have_changed(tmp_path: Path):
    """Down to 0013 and up again recreates the log, numbered from 1 again: the schema's
    version tells."""
    database = _store(tmp_path / "store.sqlite3")
    log = ChangeLog(database)
    seen = _seen_after_a_write(log, database.path)
    engine = sa.create_engine(f"sqlite:///{database.path}", poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.downgrade(config, "0013")
        command.upgrade(config, "head")
    engine.dispose()
    with sqlite3.connect(database.path, isolation_level=None) as connection:
        _insert(connection, "b")  # the new log is now as long as the old one was: entry 1,
        _insert(connection, "c")  # which names "b", would be taken as read
    assert log.since(seen).operations is None
    database.close()


def test_a_table_rebuild_that_drops_the_triggers_empties_on_every_read(tmp_path: Path):
    """SQLite's way of altering a table (copy, drop, rename) drops its triggers: no write is
    named any more, so every read must say that anything may have changed."""
    database = _store(tmp_path / "store.sqlite3")
    log = ChangeLog(database)
    seen = _seen_after_a_write(log, database.path)
    with sqlite3.connect(database.path, isolation_level=None) as connection:
        connection.execute("BEGIN")
        connection.execute("CREATE TABLE rebuilt AS SELECT * FROM operations")
        connection.execute("DROP TABLE operations")
        connection.execute("ALTER TABLE rebuilt RENAME TO operations")
        connection.execute("COMMIT")
    first = log.since(seen)
    assert first.operations is None
    assert log.since(first.seen).operations is None
    database.close()
