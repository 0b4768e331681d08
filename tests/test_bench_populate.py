"""bench/populate.py, the API benchmark's store: it loads every column tables.py has (a column
added by a migration without a value in the generator stopped the benchmark), and what it
loads reads back as operations, the change log's triggers and the indexes made again."""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path
from types import ModuleType

from sqlalchemy import select

from datapolicy.store import SQLiteDatabase
from datapolicy.store.changes import TRIGGERS
from datapolicy.store.operations import ROW, to_operation

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load_populate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("populate", BENCH / "populate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_small_store_is_loaded_whole_and_reads_back(tmp_path: Path):
    path = tmp_path / "store.sqlite3"
    load_populate().populate(path, 300)
    with sqlite3.connect(path) as connection:
        triggers = {
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        }
    assert set(TRIGGERS) <= triggers
    database = SQLiteDatabase(path)
    try:
        loaded = [to_operation(tuple(row)) for row in database.fetch_all(select(*ROW))]
    finally:
        database.close()
    assert len(loaded) == 300
    assert all(operation.user_id and operation.dry_run is None for operation in loaded)
