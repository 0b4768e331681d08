"""Workers run queued exports to an end: complete with a verifying package, fail with a reason,
retry, cancel on deletion, and hand work back on shutdown."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from conftest import wait_for
from databases import STORE_KINDS, store_database
from datapolicy.config import (
    EngineConfig,
    LocalStorageConfig,
    QueryConfig,
    SqlSourceConfig,
    StorageConfig,
    TableConfig,
)
from datapolicy.demo import demo_user_id, prepare_demo
from datapolicy.engine import build_context
from datapolicy.engine.control import ExportControl
from datapolicy.engine.sources.sql import SqlSource
from datapolicy.engine.verify import verify_package
from datapolicy.engine.worker import ExportContext, Worker
from datapolicy.model import OperationStatus, ProgressDetail
from datapolicy.store import Database, OperationStore
from datapolicy.store.queue import OperationQueue

FAST = EngineConfig(
    workers=1,
    lease_seconds=3,
    heartbeat_seconds=0.2,
    poll_seconds=0.05,
    max_attempts=2,
    retry_backoff_seconds=0,
)


@pytest.fixture(params=STORE_KINDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The operation store on SQLite and on PostgreSQL."""
    with store_database(request.param, tmp_path / "store") as db:
        yield db


@pytest.fixture
def store(database: Database) -> OperationStore:
    return OperationStore(database)


@pytest.fixture
def demo_context(tmp_path: Path) -> ExportContext:
    return build_context(prepare_demo(tmp_path), tmp_path)


def worker_for(database: Database, context: ExportContext, config: EngineConfig = FAST) -> Worker:
    return Worker(OperationQueue(database), context, config)


def exports_dir(tmp_path: Path) -> Path:
    return tmp_path / "exports"


def contacts_source(path: Path) -> SqlSource:
    """The CRM's `contacts` table in the SQLite file at `path`, each row the `owner`'s."""
    return SqlSource(
        SqlSourceConfig(
            name="crm",
            url=f"sqlite:///{path}",
            tables=(TableConfig(table="contacts", user_key="owner"),),
        )
    )


def test_an_export_completes_with_exactly_the_users_data(tmp_path, database, store, demo_context):
    user = demo_user_id(0)
    operation, _ = store.create(user, str(exports_dir(tmp_path) / "ada"))
    assert worker_for(database, demo_context).run_once()
    done = store.get(operation.id)
    assert done.status is OperationStatus.COMPLETE
    assert done.progress == 100.0
    assert done.completed_at is not None
    package = exports_dir(tmp_path) / "ada" / f"{operation.id}.zip"
    assert verify_package(package) == []
    assert package.stat().st_mode & 0o777 == 0o600
    with zipfile.ZipFile(package) as archive:
        manifest = orjson.loads(archive.read("manifest.json"))
        users = archive.read("records/shop/users.jsonl").splitlines()
        orders = [
            orjson.loads(line) for line in archive.read("records/shop/orders.jsonl").splitlines()
        ]
        messages = [
            orjson.loads(line) for line in archive.read("records/shop/messages.jsonl").splitlines()
        ]
        names = archive.namelist()
    assert manifest["user"]["displayName"] == "Ada Lovelace"
    assert len(users) == 1
    assert b"password_hash" not in users[0]
    assert orders
    assert all(order["customer_id"] == user for order in orders)
    assert messages
    assert all(user in (m["sender_id"], m["recipient_id"]) for m in messages)
    assert "files/uploads/avatar.txt" in names
    assert "index.html" in names
    assert not list((exports_dir(tmp_path) / "ada").glob(".*partial"))


class PausedAtFirstWrite(ExportControl):
    """Holds the export at its first advance that wrote something (the pacer's first call)
    until `resume` is set: the test reads what the heartbeat recorded by then."""

    def __init__(self) -> None:
        self.paused = threading.Event()
        self.resume = threading.Event()

    def pacer(self, operation_id: str, stop: threading.Event) -> Callable[[float], None]:
        def pause(share: float) -> None:
            if not self.paused.is_set():
                self.paused.set()
                self.resume.wait(30)

        return pause


def test_the_heartbeat_records_the_table_and_the_records_written_with_the_progress(
    tmp_path, database, store, demo_context
):
    """While the export runs, `progressDetail` says which table it is on and how much it wrote,
    recorded in the heartbeat's write of `progress` (so never newer or older than it); once
    complete, what it wrote in all: every record, and every file byte, as the manifest
    counts them."""
    operation, _ = store.create(demo_user_id(0), str(exports_dir(tmp_path)))
    control = PausedAtFirstWrite()
    worker = Worker(OperationQueue(database), demo_context, FAST, control=control)
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    try:
        assert control.paused.wait(30)
        running = wait_for(
            "the progress detail",
            lambda: store.get(operation.id).progress_detail and store.get(operation.id),
            10,
            lambda: "",
        )
    finally:
        control.resume.set()
        thread.join(30)
    # The first table of the demo shop holds the person's one user record.
    assert running.progress_detail == ProgressDetail("shop/users", 1, 0)
    assert running.status is OperationStatus.RUNNING
    assert 0 < running.progress < 100
    done = store.get(operation.id)
    assert done.status is OperationStatus.COMPLETE
    with zipfile.ZipFile(exports_dir(tmp_path) / f"{operation.id}.zip") as archive:
        manifest = orjson.loads(archive.read("manifest.json"))
    assert done.progress_detail == ProgressDetail(
        "uploads/documents/notes.md",
        sum(source["records"] for source in manifest["sources"]),
        sum(source["bytes"] for source in manifest["sources"] if source["kind"] == "files"),
    )


def test_a_location_outside_the_roots_fails_at_once(tmp_path, database, store, demo_context):
    operation, _ = store.create(demo_user_id(1), str(tmp_path / "elsewhere"))
    worker_for(database, demo_context).run_once()
    failed = store.get(operation.id)
    assert failed.status is OperationStatus.FAILED
    assert failed.error.code == "StorageLocationInvalid"
    assert "not inside an allowed root" in failed.error.message


def test_an_unreachable_source_is_retried_then_fails_naming_it(tmp_path, database, store):
    broken = contacts_source(tmp_path / "missing" / "dir" / "crm.db")
    storage = StorageConfig(local=LocalStorageConfig(roots=(exports_dir(tmp_path),)))
    context = ExportContext([broken], None, storage)
    operation, _ = store.create("someone", str(exports_dir(tmp_path)))
    worker = worker_for(database, context)
    assert worker.run_once()
    retrying = store.get(operation.id)
    assert (retrying.status, retrying.error) == (OperationStatus.RUNNING, None)
    assert worker.run_once()
    failed = store.get(operation.id)
    assert failed.status is OperationStatus.FAILED
    assert failed.error.code == "sourceError"
    assert "crm" in failed.error.message
    assert "gave up after 2 attempts" in failed.error.message
    assert not list(exports_dir(tmp_path).glob("*"))


def test_a_column_the_database_lacks_fails_on_the_first_attempt(tmp_path, database, store):
    """A query naming a column the table does not have is refused by the database on every
    attempt: the export fails on its first, at once, with a message naming the column,
    instead of being retried over the whole backoff (issue 14)."""
    crm = tmp_path / "crm.sqlite3"
    with sqlite3.connect(crm) as connection:
        connection.execute("CREATE TABLE contacts (id INTEGER PRIMARY KEY, owner TEXT)")
    source = SqlSource(
        SqlSourceConfig(
            name="crm",
            url=f"sqlite:///{crm}",
            queries=(
                QueryConfig(name="q", sql="SELECT id, phone FROM contacts WHERE owner = :user_id"),
            ),
        )
    )
    storage = StorageConfig(local=LocalStorageConfig(roots=(exports_dir(tmp_path),)))
    operation, _ = store.create("someone", str(exports_dir(tmp_path)))
    slow_retries = FAST.model_copy(update={"retry_backoff_seconds": 3600})
    try:
        worker = worker_for(database, ExportContext([source], None, storage), slow_retries)
        assert worker.run_once()
    finally:
        source.close()
    failed = store.get(operation.id)
    assert failed.status is OperationStatus.FAILED
    assert failed.error.code == "sourceError"
    assert "no such column: phone" in failed.error.message
    assert "gave up" not in failed.error.message


def test_a_column_added_while_the_worker_runs_is_in_the_next_package(tmp_path, database, store):
    """The worker keeps its sources open between exports, as `serve` does: a column added
    after one export is in the next export's package (the tables are reflected per export),
    and after the column is dropped again the next export completes without it."""
    crm = tmp_path / "crm.sqlite3"
    with sqlite3.connect(crm) as connection:
        connection.execute("CREATE TABLE contacts (id INTEGER PRIMARY KEY, owner TEXT)")
        connection.execute("INSERT INTO contacts VALUES (1, 'someone'), (2, 'else')")
    source = contacts_source(crm)
    storage = StorageConfig(local=LocalStorageConfig(roots=(exports_dir(tmp_path),)))
    worker = worker_for(database, ExportContext([source], None, storage))

    def export_contacts() -> list[dict[str, object]]:
        operation, _ = store.create("someone", str(exports_dir(tmp_path)))
        assert worker.run_once()
        assert store.get(operation.id).status is OperationStatus.COMPLETE
        package = exports_dir(tmp_path) / f"{operation.id}.zip"
        with zipfile.ZipFile(package) as archive:
            lines = archive.read("records/crm/contacts.jsonl").splitlines()
        return [orjson.loads(line) for line in lines]

    try:
        assert export_contacts() == [{"id": 1, "owner": "someone"}]
        with sqlite3.connect(crm) as connection:
            connection.execute("ALTER TABLE contacts ADD COLUMN phone TEXT")
            connection.execute("UPDATE contacts SET phone = '555-0100' WHERE id = 1")
        assert export_contacts() == [{"id": 1, "owner": "someone", "phone": "555-0100"}]
        with sqlite3.connect(crm) as connection:
            connection.execute("ALTER TABLE contacts DROP COLUMN phone")
        assert export_contacts() == [{"id": 1, "owner": "someone"}]
    finally:
        source.close()


def test_an_unknown_user_fails_without_retrying(tmp_path, database, store, demo_context):
    operation, _ = store.create("nobody", str(exports_dir(tmp_path)))
    worker_for(database, demo_context).run_once()
    assert store.get(operation.id).error.code == "userNotFound"


class CutAtFinish(ExportControl):
    """Cuts the first attempt's partial file short just before it is finished (as a disk that
    lost the tail of a write would), once."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.cut = False

    def reached(self, operation_id: str, step: str) -> None:
        if step == "finish" and not self.cut:
            self.cut = True
            (partial,) = self.directory.glob(f".{operation_id}.*.zip.partial")
            with partial.open("r+b") as file:
                file.truncate(partial.stat().st_size // 2)


def test_a_package_that_does_not_verify_fails_the_attempt_instead_of_completing(
    tmp_path, database, store, demo_context
):
    """The package is checked against its manifest before it is published: a cut package is
    not published, the attempt fails (and is retried), and nothing is left; the next attempt
    publishes a package that verifies."""
    location = exports_dir(tmp_path) / "cut"
    operation, _ = store.create(demo_user_id(2), str(location))
    worker = Worker(OperationQueue(database), demo_context, FAST, control=CutAtFinish(location))
    assert worker.run_once()
    retried = store.get(operation.id)
    assert retried.status is OperationStatus.RUNNING
    assert list(location.iterdir()) == []
    assert worker.run_once()
    done = store.get(operation.id)
    assert done.status is OperationStatus.COMPLETE
    assert verify_package(location / f"{operation.id}.zip") == []
    assert [path.name for path in location.iterdir()] == [f"{operation.id}.zip"]


def test_a_failure_after_worker_losses_lists_every_attempt(tmp_path, database, store):
    """Worker losses do not use up `max_attempts`; when the export finally fails, its error
    says how each attempt ended."""
    broken = contacts_source(tmp_path / "missing" / "dir" / "crm.db")
    storage = StorageConfig(local=LocalStorageConfig(roots=(exports_dir(tmp_path),)))
    queue = OperationQueue(database)
    operation, _ = store.create("someone", str(exports_dir(tmp_path)))
    ran_out = timedelta(seconds=-1)  # a lease already expired: its worker died at once
    for dead in ("dead-1", "dead-2"):
        assert queue.claim(dead, ran_out, max_worker_losses=5) is not None
    config = FAST.model_copy(update={"max_attempts": 1})
    worker = Worker(queue, ExportContext([broken], None, storage), config)
    assert worker.run_once()
    failed = store.get(operation.id)
    assert failed.status is OperationStatus.FAILED
    assert failed.error.code == "sourceError"
    message = failed.error.message
    assert "gave up after 3 attempts: attempt 1: workerLost: its worker (dead-1)" in message
    assert "attempt 2: workerLost: its worker (dead-2)" in message
    assert not list(exports_dir(tmp_path).glob("*"))


def test_an_idle_worker_sweeps_what_dead_attempts_left(tmp_path, database, store, demo_context):
    """Partial files older than the lease whose operation is not running go (a dead worker's,
    however deep under a root); a running operation's stays, however old (a slow attempt
    waiting on a source); a package stays. At most one sweep per lease per process."""
    queue = OperationQueue(database)
    held, _ = store.create(demo_user_id(3), "/x")
    gone, _ = store.create(demo_user_id(4), "/x")
    job = queue.claim("alive", timedelta(minutes=5))  # the oldest: `held`
    assert job is not None
    assert job.operation.id == held.id
    deep = exports_dir(tmp_path) / "a" / "b"
    deep.mkdir(parents=True)
    files = [
        deep / f".{gone.id}.{'0' * 32}.zip.partial",
        deep / f".{held.id}.{'1' * 32}.zip.partial",
        deep / f"{gone.id}.zip",
    ]
    for path in files:
        path.write_bytes(b"x")
        os.utime(path, (time.time() - 60,) * 2)
    worker = worker_for(database, demo_context)
    assert worker.sweep_orphans() == 1
    assert sorted(deep.iterdir()) == sorted(files[1:])
    files[0].write_bytes(b"x")
    os.utime(files[0], (time.time() - 60,) * 2)
    assert worker.sweep_orphans() == 0  # not again within the lease
