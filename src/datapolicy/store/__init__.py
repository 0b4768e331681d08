"""The operation store: where dataPolicyOperations live (SQLite in the data directory, or
PostgreSQL shared by several processes).

Its names are loaded when first used (lazy.py), not when any module of the package is
imported: the audit actions (store/audit/records.py) are read by `datapolicy audit list
--help`, which must not load SQLAlchemy and Alembic (store/database.py imports them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from datapolicy.lazy import lazy_names

if TYPE_CHECKING:  # the same names, for type checkers: loaded by __getattr__ at run time
    from datapolicy.store.database import (
        Database,
        PostgreSQLDatabase,
        SQLiteDatabase,
        open_database,
    )
    from datapolicy.store.operations import OperationStore, Page

__all__ = [
    "Database",
    "OperationStore",
    "Page",
    "PostgreSQLDatabase",
    "SQLiteDatabase",
    "open_database",
]

__getattr__ = lazy_names(
    __name__,
    {
        "Database": "datapolicy.store.database",
        "PostgreSQLDatabase": "datapolicy.store.database",
        "SQLiteDatabase": "datapolicy.store.database",
        "open_database": "datapolicy.store.database",
        "OperationStore": "datapolicy.store.operations",
        "Page": "datapolicy.store.operations",
    },
)
