"""Processes starting together on a new SQLite data directory: each migrates the store and its
audit file, and none may fail because another is creating the same tables."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from conftest import TEST_STORE
from datapolicy.store import SQLiteDatabase
from datapolicy.store.audit import open_audit_log

pytestmark = [
    pytest.mark.e2e,  # processes starting on one new store at once
    pytest.mark.skipif(
        TEST_STORE != "sqlite", reason="SQLite files only: runs in the SQLite-store pass"
    ),
]
PROCESSES = 4
ROUNDS = 2


def open_store(path: str, ready: multiprocessing.synchronize.Barrier) -> None:
    """What `serve` and `worker` do first: migrate the store, then open its audit trail."""
    database = SQLiteDatabase(Path(path))
    ready.wait()
    database.migrate()
    open_audit_log(database).close()
    database.close()


def test_processes_migrating_a_new_store_at_once_all_start(tmp_path: Path):
    context = multiprocessing.get_context("spawn")
    for round_ in range(ROUNDS):
        path = tmp_path / f"round-{round_}" / "datapolicy.sqlite3"
        ready = context.Barrier(PROCESSES)
        processes = [
            context.Process(target=open_store, args=(str(path), ready)) for _ in range(PROCESSES)
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=60)
        assert [process.exitcode for process in processes] == [0] * PROCESSES
