"""SQLite store and audit files are owner-only whatever the umask: the file 0600 (and so its
`-wal` and `-shm` files, which SQLite creates with the database file's mode), a directory it
makes 0700; a file an earlier version left 0644 is narrowed when opened."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from datapolicy.store import OperationStore, SQLiteDatabase
from datapolicy.store.audit import AuditAction, open_audit_log


@pytest.fixture(params=[0o022, 0o000], ids=["umask 022", "umask 000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_store_and_audit_files_are_owner_only(tmp_path: Path, umask: int):
    directory = tmp_path / "data"
    database = SQLiteDatabase(directory / "datapolicy.sqlite3")
    database.migrate()
    log = open_audit_log(database)
    try:
        OperationStore(database).create("ada", "/exports")
        log.record(AuditAction.OPERATION_STARTED, subject="tests")
        files = sorted(path.name for path in directory.iterdir())
        assert files == [
            "datapolicy-audit.sqlite3",
            "datapolicy-audit.sqlite3-migrate.lock",
            "datapolicy-audit.sqlite3-shm",
            "datapolicy-audit.sqlite3-wal",
            "datapolicy.sqlite3",
            "datapolicy.sqlite3-migrate.lock",
            "datapolicy.sqlite3-shm",
            "datapolicy.sqlite3-wal",
        ]
        assert {name: mode(directory / name) for name in files} == dict.fromkeys(files, 0o600)
        assert mode(directory) == 0o700
    finally:
        log.close()
        database.close()


def test_a_file_left_readable_to_others_is_narrowed(tmp_path: Path):
    path = tmp_path / "datapolicy.sqlite3"
    path.touch()
    path.chmod(0o644)
    database = SQLiteDatabase(path)
    try:
        database.migrate()
        assert mode(path) == 0o600
    finally:
        database.close()


def test_a_companion_file_another_process_deletes_meanwhile_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Regression: four processes starting on one new store at once, one failed with
    StoreUnreachable "No such file or directory" because another deleted the `-journal` between
    this one's look and its chmod. Here the deletion comes exactly there."""
    path = tmp_path / "datapolicy.sqlite3"
    journal = path.with_name(path.name + "-journal")
    journal.touch()
    real_chmod = os.chmod

    def chmod_after_another_process_deleted(target: Path, mode: int) -> None:
        if Path(target) == journal:
            journal.unlink()
        real_chmod(target, mode)

    monkeypatch.setattr("datapolicy.store.database.os.chmod", chmod_after_another_process_deleted)
    database = SQLiteDatabase(path)
    try:
        database.migrate()
        assert database.revision() is not None
    finally:
        database.close()
