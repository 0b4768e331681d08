"""What the audit trail says about a deleted operation's package is what happened to it, on
SQLite and PostgreSQL: `package.deleted` only when the worker deleted it; when its target
refused (a root no longer allowed; an Azure SAS without delete permission, a 403 from
Azurite) the package stays and `package.deletionRefused` is recorded. A cleanup whose entry
cannot be appended (another session holds the trail's lock) keeps the operation's row and what
it did to the package, and records it on the next try, once, though the package is gone by
then."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_retention import engine

from azurite import Azurite, blob_names
from databases import STORE_KINDS, holding_the_audit_head, store_database
from datapolicy.config import AzureStorageConfig, LocalStorageConfig, StorageConfig
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


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    running = Azurite(tmp_path_factory.mktemp("azurite") / "data").start()
    yield running
    running.stop()


def local(*roots: Path) -> StorageConfig:
    return StorageConfig(local=LocalStorageConfig(roots=roots))


def worker(database: Database, trail: AuditLog, storage: StorageConfig) -> Worker:
    context = ExportContext(sources=(), directory=None, storage=storage)
    return Worker(OperationQueue(database), context, engine(), audit=trail)


def completed(database: Database, trail: AuditLog, storage: StorageConfig, location: str) -> str:
    """A complete export's operation id."""
    store = OperationStore(database)
    operation, _ = store.create("alice", location)
    assert worker(database, trail, storage).run_once()
    assert store.get(operation.id).status is OperationStatus.COMPLETE
    return operation.id


def published(database: Database, trail: AuditLog, root: Path) -> tuple[str, Path]:
    """A complete export's operation id and package, in a local directory."""
    operation_id = completed(database, trail, local(root), str(root / "alice"))
    package = root / "alice" / f"{operation_id}.zip"
    assert package.is_file()
    return operation_id, package


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
    narrowed = worker(database, trail, local(tmp_path / "elsewhere"))  # root no longer allowed
    assert narrowed.run_once()
    assert package.is_file()  # it stays: nothing of ours may touch it
    assert about(trail, operation_id)[-1] == "package.deletionRefused"
    assert "package.deleted" not in about(trail, operation_id)
    assert trail.verify().ok


def test_a_package_azure_refuses_to_delete_is_recorded_as_refused(database, trail, azurite):
    container = azurite.new_container()
    storage = StorageConfig(azure=AzureStorageConfig(allowed_hosts=(azurite.host,)))
    location = azurite.container_sas_url(container.container_name, "cw")  # no delete
    operation_id = completed(database, trail, storage, location)
    OperationStore(database).delete(operation_id, lambda operation: True)
    assert worker(database, trail, storage).run_once()
    assert blob_names(container) == [f"{operation_id}.zip"]  # Azure refused: it stays
    assert about(trail, operation_id)[-1] == "package.deletionRefused"
    assert "package.deleted" not in about(trail, operation_id)
    assert not worker(database, trail, storage).run_once()  # the operation is gone


def test_a_cleanup_that_cannot_be_recorded_keeps_its_row_and_records_later(
    database, trail, tmp_path
):
    root = tmp_path / "exports"
    operation_id, package = published(database, trail, root)
    store = OperationStore(database)
    store.delete(operation_id, lambda operation: True)
    cleaner = worker(database, trail, local(root))
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
