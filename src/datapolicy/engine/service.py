"""Starting exports: the one entry point the API (both of its routes) and the CLI share.

A start is checked before anything is queued: the user must exist in the directory and the
storage location must be permitted and writable, so that a request that cannot succeed gets a
400 or 404 at once instead of a failed operation later.
"""

from __future__ import annotations

from datapolicy.engine.targets import resolve_target
from datapolicy.engine.worker import ExportContext
from datapolicy.errors import NotFound
from datapolicy.model import Operation
from datapolicy.store import OperationStore


class UnknownUser(NotFound):
    code = "Request_ResourceNotFound"


class ExportService:
    def __init__(self, store: OperationStore, context: ExportContext, default_location: str):
        self.store = store
        self.context = context
        self.default_location = default_location

    def check_user(self, user_id: str) -> None:
        directory = self.context.directory
        if directory is not None and directory.get(user_id) is None:
            raise UnknownUser(
                f"Resource '{user_id[:100]}' does not exist or one of its queried "
                "reference-property objects are not present."
            )

    def check_location(self, location: str) -> None:
        resolve_target(location, self.context.storage).check()

    def start(
        self, user_id: str, storage_location: str | None, idempotency_key: str | None = None
    ) -> tuple[Operation, bool]:
        """Queue an export; returns the operation and whether it is new (False when the
        idempotency key was seen within the last 24 hours)."""
        if idempotency_key is not None:
            # Before the checks: the first start may have changed what they see (Azure's
            # RequestInfo.json marks a container as used).
            existing = self.store.find_started(idempotency_key)
            if existing is not None:
                return existing, False
        location = storage_location or self.default_location
        self.check_user(user_id)
        self.check_location(location)
        return self.store.create(user_id, location, idempotency_key)
