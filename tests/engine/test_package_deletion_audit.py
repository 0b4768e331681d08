"""What the audit trail says about a deleted operation's package is what happened to it, on
SQLite and PostgreSQL: `package.deleted` only when the worker deleted it; when its target
refused (here: a root no longer allowed) the package stays and `package.deletionRefused` is
recorded. A cleanup whose entry cannot be appended (another session holds the trail's lock)
keeps the operation's row and what it did to the package, and records it on the next try,
once, though the package is gone by then."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_retention import engine

from databases import STORE_KINDS, holding_the_audit_head, store_database
from datapolicy.config import LocalStorageConfig, StorageConfig
from datapolicy.engine.worker import ExportContext, Worker
from datapolicy.model import OperationStatus
from datapolicy.store import Database, OperationStore
from datapolicy.store.audit import AuditLog, open_audit_log
from datapolicy.store.database import Timeouts
from datapolicy.store.queue import OperationQueue


@pytest.fixture(params=STORE_KINDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with store_database(request.param, tmp_path / "store", Timeouts(lock=0.3)) as db:
        yield db


@pytest.fixture
def trail(database: Database) -> Iterator[AuditLog]:
    log = open_audit_log(database)
    yield log
    log.close()


def worker(database: Database, trail: AuditLog, roots: tuple[Path, ...]) -> Worker:
    storage = StorageConfig(local=LocalStorageConfig(roots=roots))
    context = ExportContext(sources=(), directory=None, storage=storage)
    return Worker(OperationQueue(database), context, engine(), audit=trail)


def published(database: Database, trail: AuditLog, root: Path) -> tuple[str, Path]:
    """A complete export's operation id and package."""
    store = OperationStore(database)
    operation, _ = store.create("alice", str(root / "alice"))
    assert worker(database, trail, (root,)).run_once()
    assert store.get(operation.id).status is OperationStatus.COMPLETE
    package = root / "alice" / f"{operation.id}.zip"
    assert package.is_file()
    return operation.id, package


def about(trail: AuditLog, operation_id: str) -> list[str]:
    return [
        str(entry.record.action)
        for entry in trail.entries()
        if entry.record.operation_id == operation_id
    ]


def test_a_package_whose_target_refuses_is_recorded_as_refused(database, trail, tmp_path):
    root = tmp_path / "exports"
    operation_id, package = published(database, trail, root)
    OperationStore(database).delete(operation_id, lambda operation: True)
    narrowed = worker(database, trail, (tmp_path / "elsewhere",))  # root no longer allowed
    assert narrowed.run_once()
    assert package.is_file()  # it stays: nothing of ours may touch it
    assert about(trail, operation_id)[-1] == "package.deletionRefused"
    assert "package.deleted" not in about(trail, operation_id)
    assert trail.verify().ok


def test_a_cleanup_that_cannot_be_recorded_keeps_its_row_and_records_later(
    database, trail, tmp_path
):
    root = tmp_path / "exports"
    operation_id, package = published(database, trail, root)
    store = OperationStore(database)
    store.delete(operation_id, lambda operation: True)
    cleaner = worker(database, trail, (root,))
    with holding_the_audit_head(trail):
        assert cleaner.run_once()
    assert not package.exists()  # deleted, but not yet on the record: the row stays
    assert "package.deleted" not in about(trail, operation_id)
    assert cleaner.queue.unrecorded_package_deletion(operation_id) == "deleted"
    assert cleaner.run_once()  # the package is gone now; what was done is recorded
    assert about(trail, operation_id).count("package.deleted") == 1
    assert cleaner.queue.unrecorded_package_deletion(operation_id) is None  # the row is gone
    assert not cleaner.run_once()
    assert trail.verify().ok
