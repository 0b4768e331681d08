"""Starting exports: the one entry point the API (both of its routes) and the CLI share.

A start is checked before anything is queued: the user must exist in the directory and the
storage location must be permitted and writable, so that a request that cannot succeed gets a
400 or 404 at once instead of a failed operation later. Checks change nothing at the location;
it is prepared (a directory made, Azure's RequestInfo.json written) only for an export that is
really started or moved there (`start`, `update`).

It also finds a complete export's package on local disk for the API's download route
(`local_package`), so that the web layer never decides what path it may serve.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from datapolicy import logs, tracing
from datapolicy.engine.targets import StorageLocationError, Target, resolve_target
from datapolicy.engine.targets.local import local_target
from datapolicy.engine.worker import ExportContext
from datapolicy.errors import Conflict, DatapolicyError, NotFound
from datapolicy.model import Operation, OperationStatus, OperationType
from datapolicy.store import OperationStore
from datapolicy.store.operations import Precondition, Recorder
from datapolicy.store.queue import OperationQueue

logger = logging.getLogger(__name__)


def scoped_key(caller: str, idempotency_key: str) -> str:
    """The idempotency key as stored: a digest of the caller and the key, so that two callers'
    keys never meet (and the stored value fits its column whatever the key's length)."""
    digest = hashlib.sha256(orjson.dumps([caller, idempotency_key])).hexdigest()
    return f"sha256:{digest}"


class UnknownUser(NotFound):
    code = "Request_ResourceNotFound"


class PackageNotAvailable(NotFound):
    """The operation exists, but there is no package on this server's disk to hand out."""


class ExportService:
    def __init__(self, store: OperationStore, context: ExportContext, default_location: str):
        self.store = store
        self.queue = OperationQueue(store.database, store.clock)
        self.context = context
        self.default_location = default_location

    def check_user(self, user_id: str) -> None:
        directory = self.context.directory
        if directory is not None and directory.get(user_id) is None:
            raise UnknownUser(
                f"Resource '{user_id[:100]}' does not exist or one of its queried "
                "reference-property objects are not present."
            )

    def check_location(self, location: str) -> Target:
        """The target for `location`, checked without changing anything there."""
        target = resolve_target(location, self.context.storage)
        target.check()
        return target

    def update(
        self,
        operation_id: str,
        changes: dict[str, Any],
        precondition: Precondition,
        record: Recorder | None = None,
    ) -> Operation:
        """Apply a PATCH. A new storage location is checked first (a 400 that changes nothing),
        then the store applies the change or refuses it (409, 412: nothing was created at the
        location), and only then is the location prepared (its directory, Azure's
        RequestInfo.json). If that is refused, the previous location is put back and the
        refusal is the answer. `record` writes the audit entry of each change (the revert too)
        in the transaction that makes it."""
        location = changes.get("storageLocation")
        if location is None:
            return self.store.update(operation_id, changes, precondition, record)
        target = self.check_location(location)
        before = self.store.get(operation_id)
        updated = self.store.update(operation_id, changes, precondition, record)
        if location == before.storage_location or before.storage_location is None:
            return updated
        try:
            target.prepare()
        except StorageLocationError:
            try:
                self.store.update(
                    operation_id,
                    {"storageLocation": before.storage_location},
                    lambda current: current.version == updated.version,
                    record,
                )
            except DatapolicyError as exc:  # changed or claimed meanwhile: it keeps the new one
                logger.warning("the previous storage location could not be restored: %s", exc)
            raise
        return updated

    def start(
        self,
        user_id: str,
        storage_location: str | None,
        idempotency_key: str | None = None,
        record: Recorder | None = None,
        *,
        caller: str = "",
    ) -> tuple[Operation, bool]:
        """Queue an export; returns the operation and whether it is new (False when the
        same `caller` started the same request with this idempotency key within the last 24
        hours). `record` writes a new export's audit entry in the transaction that creates it:
        an export whose start cannot be recorded is not created (store/operations.py).

        A key is the caller's own: it is stored scoped to `caller` (who the token says is
        calling), so another caller's start with the same key is a start of its own and learns
        nothing of the first. The same caller reusing a key for a different user or location
        gets a 409 `IdempotencyKeyReused` (docs/graph-compatibility.md)."""
        return self._start(
            user_id, storage_location, idempotency_key, record, caller, OperationType.EXPORT, None
        )

    def start_erasure(
        self,
        user_id: str,
        storage_location: str | None,
        dry_run: bool,
        idempotency_key: str | None = None,
        record: Recorder | None = None,
        *,
        caller: str = "",
    ) -> tuple[Operation, bool]:
        """Queue an erasure (docs/erasure.md), checked as an export's start is; with `[erasure]
        approval = "required"` it waits, notStarted, for `store.approve`. Whether it is a dry
        run and who requested it (`caller`) are stored in its erasure state, which the worker
        runs it by, and in columns of their own, which the operation shows (`dryRun`,
        `approval.requestedBy`) to whoever approves it. Refused with 409 when erasure is not
        configured (the request is well-formed; the service's configuration does not allow
        it)."""
        if self.context.erasure is None:
            raise Conflict(
                "Erasure is not configured: the configuration has no [erasure] table "
                "(docs/erasure.md).",
                code="erasureNotConfigured",
            )
        state = orjson.dumps({"dryRun": dry_run, "requestedBy": caller, "committed": {}}).decode()
        pending = self.context.erasure.approval == "required"
        return self._start(
            user_id,
            storage_location,
            idempotency_key,
            record,
            caller,
            OperationType.ERASE,
            state,
            pending,
            dry_run,
        )

    def _start(
        self,
        user_id: str,
        storage_location: str | None,
        idempotency_key: str | None,
        record: Recorder | None,
        caller: str,
        operation_type: OperationType,
        erasure_state: str | None,
        approval_pending: bool = False,
        dry_run: bool = False,
    ) -> tuple[Operation, bool]:
        location = storage_location or self.default_location
        key = None if idempotency_key is None else scoped_key(caller, idempotency_key)
        if key is not None:
            # Before the checks: the first start may have changed what they see (Azure's
            # RequestInfo.json marks a container as used).
            existing = self.store.find_started(key, user_id, location, operation_type, dry_run)
            if existing is not None:
                return existing, False
        self.check_user(user_id)
        self._refuse_together(user_id, operation_type)
        self.check_location(location).prepare()
        operation, created = self.store.create(
            user_id,
            location,
            key,
            record,
            operation_type=operation_type,
            erasure_state=erasure_state,
            approval_pending=approval_pending,
            dry_run=dry_run,
            requested_by=caller or None,  # an erasure's requester, shown to its approver
        )
        if created:
            logs.operation_id.set(operation.id)
            logger.info("%s queued", operation.operation_type.noun)
            tracing.remember_start(operation.id)  # the export run's span links to this request
        return operation, created

    def _refuse_together(self, user_id: str, operation_type: OperationType) -> None:
        """An export and an erasure of one person never run together: while one is unfinished
        (notStarted or running), the other is refused with 409 (docs/erasure.md). Exports
        beside exports are as before."""
        for other in self.queue.active_for_user(user_id):
            if OperationType.ERASE in (operation_type, other.operation_type):
                raise Conflict(
                    f"The {other.operation_type} operation '{other.id}' of this user is "
                    f"{other.status}; an export and an erasure of one user never run together. "
                    "Retry once it is complete or failed.",
                    code="operationInProgress",
                )

    def local_package(self, operation_id: str) -> tuple[Operation, BinaryIO]:
        """A complete operation and its package, opened for reading, if it was written to a local
        directory that is still a permitted root (configuration may have narrowed since) and is
        on this server's disk (a worker on another host writes to its own). The caller closes
        the file."""
        operation, published = self.store.published(operation_id)
        if operation.status is not OperationStatus.COMPLETE or published is None:
            raise PackageNotAvailable(
                f"The dataPolicyOperation '{operation_id[:100]}' is {operation.status}; its "
                "package can be downloaded once it is complete."
            )
        package = Path(published)
        if not package.is_absolute() or not self._permitted_local(operation.storage_location):
            raise PackageNotAvailable(
                f"The package of dataPolicyOperation '{operation_id[:100]}' was not written to "
                "a local directory; it is at its storageLocation."
            )
        try:  # opened here, so a package deleted after this check is still read whole
            file = open(package, "rb", opener=_no_follow)  # noqa: SIM115 (the caller closes it)
        except OSError:  # gone, or a symlink (a worker writes none)
            raise PackageNotAvailable(
                f"The package of dataPolicyOperation '{operation_id[:100]}' is not on this "
                "server's disk."
            ) from None
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            file.close()
            raise PackageNotAvailable(
                f"The package of dataPolicyOperation '{operation_id[:100]}' is not a file."
            )
        return operation, file

    def _permitted_local(self, location: str | None) -> bool:
        """Whether `location` is a local directory inside a root permitted now."""
        try:
            target = local_target(location or "", self.context.storage.local.roots)
            if target is None:
                return False
            target.check()
        except StorageLocationError:
            return False
        return True


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)
