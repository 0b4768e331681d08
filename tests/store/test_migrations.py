"""The Alembic revisions on SQLite and PostgreSQL: up from an older schema with rows in it, down,
and up again; what revision 0003 does to existing idempotency keys and, on PostgreSQL, to
collations."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from databases import POSTGRESQL, STORE_KINDS, scratch_database, store_server
from datapolicy.store import database as store_database_module
from datapolicy.store.changes import TRIGGERS
from datapolicy.store.tables import metadata

MIGRATIONS = Path(store_database_module.__file__).with_name("migrations")
HOUR = 3_600_000_000


@pytest.fixture(params=STORE_KINDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with scratch_database(request.param, tmp_path, within=store_server(request.param)) as url:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        yield engine
        engine.dispose()


def migrate(engine: Engine, how: str, revision: str) -> None:
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        getattr(command, how)(config, revision)


def insert(engine: Engine, **values: object) -> None:
    row = {
        "user_id": "u",
        "status": "notStarted",
        "progress": 0.0,
        "submitted_at": 0,
        "version": 1,
        **values,
    }
    with engine.begin() as connection:
        table = sa.table("operations", *(sa.column(name) for name in row))
        connection.execute(table.insert().values(row))


def keys(engine: Engine) -> dict[str, str | None]:
    with engine.connect() as connection:
        return dict(connection.execute(sa.text("SELECT id, idempotency_key FROM operations")).all())


def test_revision_0003_keeps_each_key_on_its_newest_live_operation(engine: Engine):
    migrate(engine, "upgrade", "0002")
    insert(engine, id="old", idempotency_key="k1", submitted_at=0)
    insert(engine, id="new", idempotency_key="k1", submitted_at=30 * HOUR)
    insert(engine, id="gone", idempotency_key="k2", submitted_at=40 * HOUR, deleted_at=1)
    insert(engine, id="only", idempotency_key="k3", submitted_at=1)
    insert(engine, id="tie-a", idempotency_key="k4", submitted_at=5)
    insert(engine, id="tie-b", idempotency_key="k4", submitted_at=5)
    migrate(engine, "upgrade", "head")
    assert keys(engine) == {
        "old": None,
        "new": "k1",
        "gone": None,
        "only": "k3",
        "tie-a": None,
        "tie-b": "k4",
    }
    with pytest.raises(IntegrityError):
        insert(engine, id="again", idempotency_key="k1")


def test_revision_0013_copies_who_approved_an_erasure_and_when_into_their_columns(
    engine: Engine,
):
    """An erasure approved before 0013 kept its approver and time only in `erasure_state`: the
    revision copies both into `approved_by` and `approved_at` (microseconds), which the
    operation's `approval` is read from; other rows keep nulls."""
    migrate(engine, "upgrade", "0012")
    approved = '{"dryRun": false, "requestedBy": "[\\"a\\",\\"u\\"]", "committed": {}, '
    approved += '"approvedBy": "[\\"a\\",\\"dpo\\"]", "approvedAt": "1970-01-01T00:00:01.000002Z"}'
    insert(engine, id="approved", operation_type="erasePersonalData", erasure_state=approved)
    insert(
        engine,
        id="pending",
        operation_type="erasePersonalData",
        erasure_state='{"dryRun": true, "requestedBy": "x", "committed": {}}',
        approval_pending=1,
    )
    insert(engine, id="export")
    migrate(engine, "upgrade", "head")
    with engine.connect() as connection:
        rows = dict(
            (id_, (by, at))
            for id_, by, at in connection.execute(
                sa.text("SELECT id, approved_by, approved_at FROM operations")
            )
        )
    assert rows == {
        "approved": ('["a","dpo"]', 1_000_002),
        "pending": (None, None),
        "export": (None, None),
    }


def test_revision_0015_marks_the_packages_of_complete_erasures_as_receipts(engine: Engine):
    """Before 0015 only an erasure's `erasure_state` said whether it was a dry run: the revision
    sets `package_receipt` for the published package of each complete erasure (which holds its
    receipt, kept by retention from now on) and for no other: not a dry run's, an export's, or
    an erasure's that published nothing."""
    migrate(engine, "upgrade", "0014")
    erased = '{"dryRun":false,"requestedBy":"[\\"a\\",\\"u\\"]","committed":{}}'
    dry_run = '{"dryRun": true, "requestedBy": "x", "committed": {}}'
    published = {"status": "complete", "completed_at": 1, "package_location": "/srv/p.zip"}
    erasure = {"operation_type": "erasePersonalData"}
    insert(engine, id="receipt", erasure_state=erased, **erasure, **published)
    insert(engine, id="dry-run", erasure_state=dry_run, **erasure, **published)
    insert(engine, id="export", **published)
    insert(engine, id="waiting", erasure_state=erased, **erasure)
    migrate(engine, "upgrade", "head")
    with engine.connect() as connection:
        rows = dict(connection.execute(sa.text("SELECT id, package_receipt FROM operations")).all())
    assert rows == {"receipt": 1, "dry-run": 0, "export": 0, "waiting": 0}


def erasure_state(dry_run: object, requester: object = None) -> str:
    """An erasure's `erasure_state` as engine/service.py writes it (`dryRun` left out when
    None, as a hand-made row might)."""
    state: dict[str, object] = {"committed": {}}
    if dry_run is not None:
        state["dryRun"] = dry_run
    if requester is not None:
        state["requestedBy"] = requester
    return json.dumps(state)


def requests(engine: Engine) -> dict[str, tuple[object, object]]:
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT id, dry_run, requested_by FROM operations"))
        return {id_: (None if dry is None else bool(dry), by) for id_, dry, by in rows}


def test_revision_0016_copies_each_erasure_s_dry_run_flag_and_requester_into_their_columns(
    engine: Engine,
):
    """Erasures started before 0016 kept whether they are a dry run and who requested them only
    in `erasure_state`: the revision copies both into `dry_run` and `requested_by`, which the
    operation's `dryRun` and `approval.requestedBy` are read from, the flag as the worker reads
    it (a missing or null one is not a dry run, and runs as the erasure); exports keep nulls.
    Down again, the columns go and the change log's triggers (0014) stay; up again, the copy
    is made again."""
    migrate(engine, "upgrade", "0015")
    alice, bob = '["app", "alice"]', '["app", "bob"]'
    insert(
        engine,
        id="dry",
        operation_type="erasePersonalData",
        erasure_state=erasure_state(True, alice),
        approval_pending=1,
    )
    insert(
        engine,
        id="real",
        operation_type="erasePersonalData",
        erasure_state=erasure_state(False, bob),
        approval_pending=1,
    )
    insert(
        engine,
        id="approved",
        operation_type="erasePersonalData",
        erasure_state=erasure_state(False, alice),
        approved_by='["a","dpo"]',
    )
    insert(
        engine, id="unsaid", operation_type="erasePersonalData", erasure_state=erasure_state(None)
    )
    insert(engine, id="nothing", operation_type="erasePersonalData")
    insert(engine, id="export")
    expected = {
        "dry": (True, alice),
        "real": (False, bob),
        "approved": (False, alice),
        "unsaid": (False, None),
        "nothing": (False, None),
        "export": (None, None),
    }
    migrate(engine, "upgrade", "0016")
    assert requests(engine) == expected
    migrate(engine, "downgrade", "0015")
    with engine.connect() as connection:
        names = {column["name"] for column in sa.inspect(connection).get_columns("operations")}
        assert {"dry_run", "requested_by"}.isdisjoint(names)
        assert "erasure_state" in names
        if engine.dialect.name == "sqlite":  # dropped in place: the table was not rebuilt
            triggers = connection.execute(
                sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            ).scalars()
            assert set(TRIGGERS) <= set(triggers)
    migrate(engine, "upgrade", "head")
    assert requests(engine) == expected


def test_down_and_up_again(engine: Engine):
    migrate(engine, "upgrade", "head")
    insert(engine, id="a", idempotency_key="k")
    migrate(engine, "downgrade", "0002")
    migrate(engine, "upgrade", "head")
    assert keys(engine) == {"a": "k"}


@pytest.mark.parametrize("engine", [POSTGRESQL], indirect=True)
def test_on_postgresql_every_string_column_compares_bytes(engine: Engine):
    migrate(engine, "upgrade", "head")
    with engine.connect() as connection:
        columns = connection.execute(
            sa.text(
                "SELECT column_name, collation_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = 'operations' "
                "AND data_type = 'character varying'"
            )
        ).all()
    # attempt_history (0007), idempotency_request (0009), operation_type and erasure_state
    # (0010), progress_part (0012), approved_by (0013), requested_by (0016)
    assert len(columns) == 17
    assert {collation for _, collation in columns} == {"C"}


def test_the_migrated_schema_is_the_one_the_queries_are_built_against(engine: Engine):
    """tables.py and the revisions agree (on PostgreSQL, but for the NULLS FIRST of
    ix_operations_completed, which only the revision states: SQLite cannot)."""
    migrate(engine, "upgrade", "head")
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    if engine.dialect.name == "postgresql":
        differences = [d for d in differences if d[1].name != "ix_operations_completed"]
    assert differences == []
