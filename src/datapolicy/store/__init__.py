"""The operation store: where dataPolicyOperations live (SQLite in the data directory, or
PostgreSQL shared by several processes)."""

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
