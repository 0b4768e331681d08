"""The operation store: where dataPolicyOperations live (SQLite in the data directory)."""

from datapolicy.store.database import Database
from datapolicy.store.operations import OperationStore, Page

__all__ = ["Database", "OperationStore", "Page"]
