"""An erasure whose worker lost its lease changes nothing more (engine/worker.py `_erase`): the
lease is renewed before each change takes effect, a source's commit or a file's deletion, and
an attempt that no longer holds it stops with that change not made. Its successor then erases
everything itself, so that its receipt counts every row and file the operation erased. Without
the check, the stalled attempt committed, and the successor's receipt said 0 for those rows.
Files, which have no transaction, are recorded one by one: a file deleted before the lease was
lost, or before a hand-back, is in the receipt too. And the row kept with the receipt names no
file of the person's."""

from __future__ import annotations

import os
import sqlite3
import threading
import zipfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from databases import SQLITE, STORE_KINDS, store_database
from datapolicy.auth.keys import erasure_secret
from datapolicy.config import (
    EngineConfig,
    ErasureConfig,
    FileSourceConfig,
    LocalStorageConfig,
    SqlSourceConfig,
    StorageConfig,
    TableConfig,
)
from datapolicy.engine import ExportService
from datapolicy.engine.control import ExportControl
from datapolicy.engine.erasure.checks import Verdict, check_key
from datapolicy.engine.sources.files import FileSource
from datapolicy.engine.sources.sql import SqlSource
from datapolicy.engine.worker import ExportContext, Worker
from datapolicy.model import OperationStatus, utc_now
from datapolicy.store import Database, OperationStore
from datapolicy.store.queue import OperationQueue
from datapolicy.store.tables import operations

ENGINE = EngineConfig(
    workers=1, lease_seconds=30, heartbeat_seconds=10, max_attempts=2, retry_backoff_seconds=0
)
PERSON = "ada"


@pytest.fixture(params=STORE_KINDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The operation store on SQLite and on PostgreSQL."""
    with store_database(request.param, tmp_path / "store") as db:
        yield db


class TakeOver:
    """Another worker claims the operation, once: as it would after the first one's lease had
    expired while that one stalled where this is called."""

    def __init__(self, database: Database):
        self.database = database
        self.taken = threading.Event()

    def once(self) -> None:
        if self.taken.is_set():
            return
        later = OperationQueue(self.database, lambda: utc_now() + timedelta(minutes=5))
        assert later.claim("successor", timedelta(seconds=30)) is not None
        self.taken.set()


class AtTheShopsLastTable(ExportControl):
    """Takes the operation over at the erasure's first advance: after the shop's one table,
    inside its transaction, before its commit."""

    def __init__(self, take_over: TakeOver):
        self.take_over = take_over

    def pacer(self, operation_id: str, stop: threading.Event) -> Callable[[float], None]:
        return lambda share: self.take_over.once()


class ListedThenTakenOver(FileSource):
    """The uploads, taken over once listed: after the shop committed, before any deletion."""

    def __init__(self, config: FileSourceConfig, take_over: TakeOver):
        super().__init__(config)
        self.take_over = take_over

    def files(self, user_id: str) -> Iterator[tuple[str, int]]:
        listed = list(super().files(user_id))
        self.take_over.once()
        return iter(listed)


def person_data(
    root: Path, file_source: Callable[[FileSourceConfig], FileSource] = FileSource
) -> ExportContext:
    """A shop whose `orders` holds three of the person's rows and one of another's, and an
    upload directory with two of the person's files (read by `file_source`, the source or a
    test's double of it), both erased by deletion."""
    with sqlite3.connect(root / "shop.sqlite3") as connection:
        connection.executescript(
            """
            CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, total INTEGER);
            INSERT INTO orders VALUES (1, 'ada', 10), (2, 'ada', 20), (3, 'ada', 30),
                                      (4, 'bob', 40);
            """
        )
    uploads = root / "uploads" / PERSON
    uploads.mkdir(parents=True)
    for name in ("a.jpg", "b.jpg"):
        (uploads / name).write_bytes(b"...")
    shop = SqlSourceConfig(
        name="shop",
        url=f"sqlite:///{root / 'shop.sqlite3'}",
        tables=(TableConfig(table="orders", user_key="customer", erase="delete"),),
    )
    files = FileSourceConfig(name="uploads", path=f"{root}/uploads/{{userId}}", erase="delete")
    return ExportContext(
        (
            SqlSource(shop),
            file_source(files),
        ),
        None,
        StorageConfig(local=LocalStorageConfig(roots=(root,))),
        erasure=ErasureConfig(),
        erasure_secret_file=root / "erasure-secret.key",
    )


def taken_over_after_the_lease(database: Database, context: ExportContext) -> None:
    """The last worker to take the erasure over stalled for good: the next one takes it over
    once that lease has ended, and runs it."""
    later = OperationQueue(database, lambda: utc_now() + timedelta(minutes=10))
    assert Worker(later, context, ENGINE, clock=later.clock).run_once()


def shop_ids(root: Path) -> list[int]:
    with sqlite3.connect(root / "shop.sqlite3") as connection:
        return [row[0] for row in connection.execute("SELECT id FROM orders ORDER BY id")]


def uploads_of(root: Path) -> list[str]:
    directory = root / "uploads" / PERSON
    return sorted(path.name for path in directory.iterdir()) if directory.exists() else []


def receipt_of(root: Path, operation_id: str) -> dict[str, Any]:
    with zipfile.ZipFile(root / "exports" / f"{operation_id}.zip") as archive:
        receipt: dict[str, Any] = orjson.loads(archive.read("receipt.json"))
    return receipt


def uploads_verdicts(root: Path, receipt: dict[str, Any]) -> dict[str, Verdict]:
    """What the receipt says of each of the person's files, under the test's erasure secret."""
    secret = erasure_secret(root / "erasure-secret.key", create=False)
    return {
        name: check_key(receipt, secret, ("uploads", name)).verdict for name in ("a.jpg", "b.jpg")
    }


def receipt_counts(package: Path) -> dict[str, int]:
    with zipfile.ZipFile(package) as archive:
        receipt = orjson.loads(archive.read("receipt.json"))
    counts = {line["table"]: line["keyCount"] for line in receipt["tables"]}
    counts.update({line["source"]: line["keyCount"] for line in receipt["fileSources"]})
    return counts


@pytest.mark.parametrize("stall", ["shop", "uploads"])
def test_an_attempt_taken_over_before_a_change_makes_none_and_the_receipt_counts_all(
    tmp_path: Path, database: Database, stall: str
):
    """Taken over inside the shop's transaction: the shop keeps its rows and no file goes.
    Taken over after the shop committed, with the uploads listed: that commit stays recorded
    and no file goes. Either way the attempt that completes publishes a receipt counting the
    3 rows and the 2 files, and the other person's row stays."""
    take_over = TakeOver(database)
    context = person_data(
        tmp_path,
        (lambda config: ListedThenTakenOver(config, take_over))
        if stall == "uploads"
        else FileSource,
    )
    store = OperationStore(database)
    service = ExportService(store, context, str(tmp_path / "exports"))
    operation, _ = service.start_erasure(PERSON, str(tmp_path / "exports"), False)
    control = AtTheShopsLastTable(take_over) if stall == "shop" else ExportControl()
    first = Worker(OperationQueue(database), context, ENGINE, control=control)
    try:
        assert first.run_once()
        assert take_over.taken.is_set()
        assert uploads_of(tmp_path) == ["a.jpg", "b.jpg"]
        assert shop_ids(tmp_path) == ([1, 2, 3, 4] if stall == "shop" else [4])
        assert store.get(operation.id).status is OperationStatus.RUNNING

        taken_over_after_the_lease(database, context)
    finally:
        context.close()
    done = store.get(operation.id)
    assert done.status is OperationStatus.COMPLETE, done.error
    assert shop_ids(tmp_path) == [4]
    assert uploads_of(tmp_path) == []
    package = tmp_path / "exports" / f"{operation.id}.zip"
    assert receipt_counts(package) == {"orders": 3, "uploads": 2}


class TakenOverOnRecord(OperationQueue):
    """A queue whose erasure state is taken over just before it is saved: the lease lost
    between a source's commit and its record."""

    def __init__(self, database: Database, take_over: TakeOver):
        super().__init__(database)
        self.take_over = take_over

    def save_erasure_state(
        self, operation_id: str, owner: str, state: str, *, renew: timedelta | None = None
    ) -> bool:
        if renew is None:  # a source's record, not a file's
            self.take_over.once()
        return super().save_erasure_state(operation_id, owner, state, renew=renew)


def test_a_commit_whose_record_fails_stops_the_attempt_and_is_logged(
    tmp_path: Path, database: Database, caplog: pytest.LogCaptureFixture
):
    """The one window left (docs/erasure.md): the lease lost after the shop's commit and before
    its record. The attempt logs an error naming the source and deletes no file (the renewal
    before the first fails); its successor deletes them."""
    take_over = TakeOver(database)
    context = person_data(tmp_path)
    store = OperationStore(database)
    service = ExportService(store, context, str(tmp_path / "exports"))
    operation, _ = service.start_erasure(PERSON, str(tmp_path / "exports"), False)
    first = Worker(TakenOverOnRecord(database, take_over), context, ENGINE)
    try:
        assert first.run_once()
        assert shop_ids(tmp_path) == [4]
        assert uploads_of(tmp_path) == ["a.jpg", "b.jpg"]
        assert f"erasure {operation.id}: source 'shop' committed, but the lease was lost" in (
            caplog.text
        )
        taken_over_after_the_lease(database, context)
    finally:
        context.close()
    assert store.get(operation.id).status is OperationStatus.COMPLETE
    assert uploads_of(tmp_path) == []


class TakenOverAfterTheFirstDeletion(FileSource):
    """The uploads: the worker stalls, and another takes the erasure over, right after the first
    file was deleted (under a lease just renewed), before the second file's renewal."""

    def __init__(self, config: FileSourceConfig, take_over: TakeOver):
        super().__init__(config)
        self.take_over = take_over

    def delete(self, user_id: str, relative: str) -> None:
        super().delete(user_id, relative)
        self.take_over.once()


def test_a_file_deleted_before_the_lease_was_lost_is_in_the_receipt(tmp_path: Path):
    """A file source has no transaction: the file deleted before the lease was lost is gone
    for the successor, which lists only the other. The stalled attempt recorded it after its
    deletion, so the receipt lists both: the stalled attempt's line (`partial`) and the
    successor's (review finding)."""
    with store_database(SQLITE, tmp_path / "store") as database:
        take_over = TakeOver(database)
        context = person_data(
            tmp_path, lambda config: TakenOverAfterTheFirstDeletion(config, take_over)
        )
        store = OperationStore(database)
        service = ExportService(store, context, str(tmp_path / "exports"))
        operation, _ = service.start_erasure(PERSON, str(tmp_path / "exports"), False)
        try:
            assert Worker(OperationQueue(database), context, ENGINE).run_once()
            assert take_over.taken.is_set()
            assert uploads_of(tmp_path) == ["b.jpg"]  # a.jpg went, under the lease
            taken_over_after_the_lease(database, context)
        finally:
            context.close()
        done = store.get(operation.id)
        assert done.status is OperationStatus.COMPLETE, done.error
        assert uploads_of(tmp_path) == []
        receipt = receipt_of(tmp_path, operation.id)
        verdicts = uploads_verdicts(tmp_path, receipt)
        lines = [(line["files"], line.get("partial", False)) for line in receipt["fileSources"]]
        assert verdicts == {"a.jpg": Verdict.ERASED, "b.jpg": Verdict.ERASED}
        assert sorted(lines) == [(1, False), (1, True)]  # the stalled attempt's, quoted


class HandedBackDuringTheDeletions(FileSource):
    """The uploads: the worker is told to hand its work back (SIGTERM, once
    `shutdown_grace_seconds` ran out) while it deletes the person's files."""

    worker: Worker | None = None

    def delete(self, user_id: str, relative: str) -> None:
        super().delete(user_id, relative)
        assert self.worker is not None
        self.worker.hand_back()


def test_files_deleted_by_an_attempt_handed_back_are_in_the_receipt(tmp_path: Path):
    """The renewal before each deletion passes (a hand-back keeps the lease until the attempt
    releases it), every file is deleted, and then `advanced()` after the file source raises
    Cancelled. The source is recorded before that, so the successor does not erase it again
    and its receipt lists both files (review finding: it said `notListed` for both)."""
    with store_database(SQLITE, tmp_path / "store") as database:
        context = person_data(tmp_path, HandedBackDuringTheDeletions)
        handed_back = context.sources[1]
        assert isinstance(handed_back, HandedBackDuringTheDeletions)
        store = OperationStore(database)
        service = ExportService(store, context, str(tmp_path / "exports"))
        operation, _ = service.start_erasure(PERSON, str(tmp_path / "exports"), False)
        try:
            first = Worker(OperationQueue(database), context, ENGINE)
            handed_back.worker = first
            assert first.run_once()
            assert uploads_of(tmp_path) == []  # both went before the hand-back took effect
            assert store.get(operation.id).status is not OperationStatus.COMPLETE
            assert Worker(OperationQueue(database), context, ENGINE).run_once()
        finally:
            context.close()
        done = store.get(operation.id)
        assert done.status is OperationStatus.COMPLETE, done.error
        receipt = receipt_of(tmp_path, operation.id)
        verdicts = uploads_verdicts(tmp_path, receipt)
        assert verdicts == {"a.jpg": Verdict.ERASED, "b.jpg": Verdict.ERASED}


NAME = "Ada Lovelace - passport scan.pdf"


def test_a_complete_erasure_keeps_no_file_name_of_the_person(tmp_path: Path):
    """An attempt that failed on a file (a second hard link: refused, naming it) left its reason
    in the row's attempt history; the row of a complete erasure, kept as long as its receipt,
    no longer holds it (review finding)."""
    with store_database(SQLITE, tmp_path / "store") as database:
        context = person_data(tmp_path)
        person = tmp_path / "uploads" / PERSON
        (person / NAME).write_bytes(b"...")
        os.link(person / NAME, tmp_path / "second-link")  # refused: the first attempt fails
        store = OperationStore(database)
        service = ExportService(store, context, str(tmp_path / "exports"))
        operation, _ = service.start_erasure(PERSON, str(tmp_path / "exports"), False)
        try:
            assert Worker(OperationQueue(database), context, ENGINE).run_once()
            (tmp_path / "second-link").unlink()
            taken_over_after_the_lease(database, context)
        finally:
            context.close()
        assert store.get(operation.id).status is OperationStatus.COMPLETE
        assert uploads_of(tmp_path) == []
        (history,) = database.fetch_all(
            select(operations.c.attempt_history).where(operations.c.id == operation.id)
        )[0]
        assert NAME not in (history or ""), history
