"""Package retention: once a published package has outlived `[engine] package_retention`, a
worker's sweep deletes it from its storage target (a local directory, an Azure container through
its SAS, an S3 bucket: the real ones, Azurite and SeaweedFS), records when and how in the store,
and appends `package.deleted` to the audit trail. A presigned PUT URL cannot delete: that is
recorded instead. A complete erasure's package, which holds its receipt, follows `[erasure]
receipt_retention` instead (by default it is kept); a dry run's follows `package_retention`.
Time is a test clock, so nothing waits for the retention to pass."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select, update

from azurite import Azurite, blob_names
from databases import STORE_KINDS, store_database
from datapolicy.config import (
    AzureStorageConfig,
    ConfigError,
    EngineConfig,
    ErasureConfig,
    LocalStorageConfig,
    S3StorageConfig,
    StorageConfig,
    parse_config,
)
from datapolicy.engine.erasure.receipt import RECEIPT_JSON
from datapolicy.engine.worker import ExportContext, Worker
from datapolicy.model import OperationStatus, OperationType
from datapolicy.store import Database, OperationStore
from datapolicy.store.audit import AuditAction, AuditLog
from datapolicy.store.queue import OperationQueue
from datapolicy.store.tables import operations
from s3server import ADMIN, SeaweedS3

RETENTION = timedelta(hours=1)
OWNER = "retention-test"


class Clock:
    """The store's, queue's and worker's time: moved by the test."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=STORE_KINDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with store_database(request.param, tmp_path / "store") as db:
        yield db


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    running = Azurite(tmp_path_factory.mktemp("azurite") / "data").start()
    yield running
    running.stop()


def engine(retention: str = "1h") -> EngineConfig:
    return EngineConfig(workers=1, poll_seconds=0.01, max_attempts=1, package_retention=retention)


class Exports:
    """Exports (and, given `[erasure]`, erasures) run to completion by an in-process worker, on
    the test's clock."""

    def __init__(
        self,
        database: Database,
        storage: StorageConfig,
        retention: str = "1h",
        erasure: ErasureConfig | None = None,
        secret: Path | None = None,
    ):
        self.clock = Clock()
        self.database = database
        self.store = OperationStore(database, self.clock)
        self.audit = AuditLog(database, self.clock)
        context = ExportContext(
            sources=(),
            directory=None,
            storage=storage,
            erasure=erasure,
            erasure_secret_file=secret,
        )
        self.worker = Worker(
            OperationQueue(database, self.clock),
            context,
            engine(retention),
            self.clock,
            audit=self.audit,
        )

    def complete(self, location: str) -> str:
        operation, _ = self.store.create("alice", location)
        return self._run(operation.id)

    def erase(self, location: str, *, dry_run: bool) -> str:
        """An erasure of alice (of no source: its package holds the summary and, unless a dry
        run, the receipt), started as engine/service.py `start_erasure` stores it."""
        state = {"dryRun": dry_run, "requestedBy": '["app","alice"]', "committed": {}}
        operation, _ = self.store.create(
            "alice",
            location,
            operation_type=OperationType.ERASE,
            erasure_state=orjson.dumps(state).decode(),
            dry_run=dry_run,
        )
        return self._run(operation.id)

    def _run(self, operation_id: str) -> str:
        assert self.worker.run_once()
        operation = self.store.get(operation_id)
        assert operation.status is OperationStatus.COMPLETE, operation.error
        return operation_id

    def sweep(self, after: timedelta) -> int:
        self.clock.now += after
        self.worker._next_sweep = 0.0  # each call is a new poll interval
        return self.worker.expire_packages(OWNER)

    def recorded(self, operation_id: str) -> tuple[datetime | None, str | None]:
        c = operations.c
        (row,) = self.database.fetch_all(
            select(c.package_deleted_at, c.package_deletion).where(c.id == operation_id)
        )
        at = None if row[0] is None else datetime.fromtimestamp(row[0] / 1e6, UTC)
        return at, row[1]

    def deletions(self) -> list[str | None]:
        return [
            entry.record.operation_id
            for entry in self.audit.entries()
            if entry.record.action is AuditAction.PACKAGE_DELETED
        ]


def test_a_local_package_is_deleted_once_it_outlives_its_retention(database, tmp_path):
    """Before the retention has passed the package stays; after it, one sweep deletes it,
    records the time, and the audit trail says so; a second sweep finds nothing to do. The
    operation itself stays, complete."""
    root = tmp_path / "exports"
    exports = Exports(database, StorageConfig(local=LocalStorageConfig(roots=(root,))))
    operation_id = exports.complete(str(root / "alice"))
    package = root / "alice" / f"{operation_id}.zip"
    assert package.is_file()

    assert exports.sweep(RETENTION - timedelta(seconds=1)) == 0
    assert package.is_file()
    assert exports.recorded(operation_id) == (None, None)

    assert exports.sweep(timedelta(seconds=2)) == 1
    assert not package.exists()
    assert exports.recorded(operation_id) == (exports.clock.now, "deleted")
    assert exports.deletions() == [operation_id]
    assert exports.store.get(operation_id).status is OperationStatus.COMPLETE

    assert exports.sweep(RETENTION) == 0
    assert exports.deletions() == [operation_id]


def test_a_package_already_gone_is_recorded_as_absent(database, tmp_path):
    root = tmp_path / "exports"
    exports = Exports(database, StorageConfig(local=LocalStorageConfig(roots=(root,))))
    operation_id = exports.complete(str(root / "alice"))
    (root / "alice" / f"{operation_id}.zip").unlink()
    assert exports.sweep(RETENTION * 2) == 1
    assert exports.recorded(operation_id)[1] == "absent"
    assert exports.deletions() == []  # nothing was deleted by us


def test_retention_off_keeps_packages(database, tmp_path):
    root = tmp_path / "exports"
    exports = Exports(database, StorageConfig(local=LocalStorageConfig(roots=(root,))), "off")
    operation_id = exports.complete(str(root / "alice"))
    assert exports.sweep(timedelta(days=3650)) == 0
    assert (root / "alice" / f"{operation_id}.zip").is_file()


def erasures(database: Database, root: Path, retention: str = "1h", **erasure: str) -> Exports:
    """Exports and erasures into local `root`, with `[erasure]` set as `erasure` says."""
    storage = StorageConfig(local=LocalStorageConfig(roots=(root,)))
    secret = root.parent / "erasure-secret.key"
    return Exports(database, storage, retention, ErasureConfig(**erasure), secret)


def holds_receipt(package: Path) -> bool:
    with zipfile.ZipFile(package) as archive:
        return RECEIPT_JSON in archive.namelist()


def test_a_complete_erasure_s_receipt_outlives_package_retention(database, tmp_path):
    """A complete erasure's package holds its receipt, the proof that the person was erased:
    with `[erasure] receipt_retention` unset (off) no sweep deletes it, however long after
    `package_retention`, while an export published with it is deleted on time, as before."""
    root = tmp_path / "exports"
    exports = erasures(database, root)
    erasure_id = exports.erase(str(root / "alice"), dry_run=False)
    export_id = exports.complete(str(root / "alice"))
    receipt = root / "alice" / f"{erasure_id}.zip"
    assert holds_receipt(receipt)

    assert exports.sweep(RETENTION + timedelta(seconds=1)) == 1
    assert not (root / "alice" / f"{export_id}.zip").exists()
    assert exports.sweep(timedelta(days=3650)) == 0
    assert holds_receipt(receipt)
    assert exports.recorded(erasure_id) == (None, None)
    assert exports.deletions() == [export_id]


@pytest.mark.parametrize("package_retention", ["1h", "off"])
def test_a_receipt_is_deleted_once_it_outlives_receipt_retention(
    database, tmp_path, package_retention
):
    """With `[erasure] receipt_retention` set, a complete erasure's package is deleted once it
    outlives that, not `package_retention` (shorter here, or off: the sweep runs for receipts
    alone), recorded and audited as any package deletion."""
    root = tmp_path / "exports"
    exports = erasures(database, root, package_retention, receipt_retention="2h")
    erasure_id = exports.erase(str(root / "alice"), dry_run=False)
    receipt = root / "alice" / f"{erasure_id}.zip"

    assert exports.sweep(RETENTION + timedelta(seconds=1)) == 0
    assert receipt.is_file()
    assert exports.sweep(RETENTION) == 1
    assert not receipt.exists()
    assert exports.recorded(erasure_id) == (exports.clock.now, "deleted")
    assert exports.deletions() == [erasure_id]


def test_a_receipt_published_without_its_flag_is_kept(database, tmp_path):
    """A complete erasure whose package was published by a process older than migration 0015
    (a rolling upgrade: `package_receipt` left 0) is not taken for an export's or a dry run's:
    neither sweep deletes it (review finding)."""
    root = tmp_path / "exports"
    exports = erasures(database, root, receipt_retention="2h")
    erasure_id = exports.erase(str(root / "alice"), dry_run=False)
    with database.transaction() as transaction:
        transaction.execute(
            update(operations).where(operations.c.id == erasure_id).values(package_receipt=0)
        )
    assert exports.sweep(timedelta(days=3650)) == 0
    assert holds_receipt(root / "alice" / f"{erasure_id}.zip")


def test_a_dry_run_s_package_follows_package_retention(database, tmp_path):
    """A dry run's package holds the person's rows and no receipt: it is deleted once it
    outlives `package_retention`, as an export's is, while the receipt of the complete erasure
    published beside it stays."""
    root = tmp_path / "exports"
    exports = erasures(database, root)
    dry_run_id = exports.erase(str(root / "alice"), dry_run=True)
    erasure_id = exports.erase(str(root / "alice"), dry_run=False)
    dry_run = root / "alice" / f"{dry_run_id}.zip"
    assert not holds_receipt(dry_run)

    assert exports.sweep(RETENTION - timedelta(seconds=1)) == 0
    assert dry_run.is_file()
    assert exports.sweep(timedelta(seconds=2)) == 1
    assert not dry_run.exists()
    assert exports.recorded(dry_run_id) == (exports.clock.now, "deleted")
    assert holds_receipt(root / "alice" / f"{erasure_id}.zip")


def test_a_root_no_longer_allowed_is_recorded_as_refused(database, tmp_path):
    """The operator removed the root from the configuration: the package cannot be reached
    through an allowed location any more, and that is recorded rather than retried forever."""
    root = tmp_path / "exports"
    exports = Exports(database, StorageConfig(local=LocalStorageConfig(roots=(root,))))
    operation_id = exports.complete(str(root / "alice"))
    exports.worker.context = ExportContext(
        sources=(), directory=None, storage=StorageConfig(local=LocalStorageConfig(roots=()))
    )
    assert exports.sweep(RETENTION * 2) == 1
    assert exports.recorded(operation_id)[1] == "refused"
    assert (root / "alice" / f"{operation_id}.zip").is_file()


def test_a_presigned_url_package_is_recorded_as_not_deletable(database):
    """A presigned PUT URL can write its one object, not delete it: retention records that it
    could not, once, and leaves the object to the bucket's own lifecycle rules."""
    url = (
        "https://s3.allowed.example/bucket/key.zip?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIA%2F20261129%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20261129T120000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=abc"
    )
    storage = StorageConfig.model_validate(
        {"s3_presigned": {"allowed_hosts": ["s3.allowed.example"]}}
    )
    exports = Exports(database, storage)
    operation, _ = exports.store.create("alice", url)
    queue = OperationQueue(database, exports.clock)
    assert queue.claim(OWNER, timedelta(minutes=1)) is not None
    assert queue.complete(operation.id, OWNER, lambda: "https://s3.allowed.example/bucket/key.zip")
    assert exports.sweep(RETENTION * 2) == 1
    assert exports.recorded(operation.id)[1] == "notDeletable"
    assert exports.sweep(RETENTION) == 0


def test_an_azure_package_is_deleted_through_its_sas(database, azurite):
    container = azurite.new_container()
    storage = StorageConfig(azure=AzureStorageConfig(allowed_hosts=(azurite.host,)))
    exports = Exports(database, storage)
    operation_id = exports.complete(azurite.container_sas_url(container.container_name, "cwd"))
    assert blob_names(container) == [f"{operation_id}.zip"]
    assert exports.sweep(RETENTION * 2) == 1
    assert blob_names(container) == []
    assert exports.recorded(operation_id)[1] == "deleted"
    assert exports.deletions() == [operation_id]


def test_an_s3_package_is_deleted_with_the_configured_credentials(database, s3: SeaweedS3):
    bucket = s3.new_bucket()
    config = S3StorageConfig(
        name="seaweed",
        endpoint_url=s3.endpoint,
        access_key_id=ADMIN[0],
        secret_access_key=ADMIN[1],
        buckets=(bucket,),
    )
    exports = Exports(database, StorageConfig(s3=(config,)))
    operation_id = exports.complete(f"s3://{bucket}/hr")
    assert s3.keys(bucket) == [f"hr/{operation_id}.zip"]
    assert exports.sweep(RETENTION * 2) == 1
    assert s3.keys(bucket) == []
    assert exports.recorded(operation_id)[1] == "deleted"
    assert exports.deletions() == [operation_id]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("", 30 * 86400),
        ('package_retention = "12h"', 12 * 3600),
        ('package_retention = "off"', None),
    ],
)
def test_package_retention_is_30_days_unless_configured(text, seconds, tmp_path):
    config = parse_config(f"[engine]\n{text}\n", tmp_path / "datapolicy.toml")
    assert config.engine.package_retention_seconds == seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("", None),
        ('receipt_retention = "3650d"', 3650 * 86400),
        ('receipt_retention = "off"', None),
    ],
)
def test_receipt_retention_is_off_unless_configured(text, seconds, tmp_path):
    """Receipts are kept until their operation is deleted unless `[erasure] receipt_retention`
    says how long."""
    config = parse_config(f"[erasure]\n{text}\n", tmp_path / "datapolicy.toml")
    assert config.erasure is not None
    assert config.erasure.receipt_retention_seconds == seconds


@pytest.mark.parametrize("key", ["engine.package_retention", "erasure.receipt_retention"])
@pytest.mark.parametrize("value", ["30", "thirty days", "0d", "-1d", "1w", ""])
def test_a_retention_that_is_not_a_duration_is_a_configuration_error(key, value, tmp_path):
    """Both retentions take a duration or "off", and refuse anything else naming the key."""
    section, name = key.split(".")
    with pytest.raises(ConfigError, match=rf"{key}: .*is not a duration"):
        parse_config(f'[{section}]\n{name} = "{value}"\n', tmp_path / "datapolicy.toml")
