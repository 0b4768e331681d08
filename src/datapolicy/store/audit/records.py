"""What the audit trail holds: the actions it records, an entry before and after it has its place
in the chain, a block of entries as stored, what a query asks for and what `verify` found.

Plain values, no database and no hashing: store/audit/chain.py encodes and checks them,
store/audit/log.py stores and reads them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

WORKER_SUBJECT = "datapolicy-worker"  # the actor of what the export engine does by itself


class AuditAction(StrEnum):
    """Every action the trail records: the one vocabulary (docs/security.md lists it too)."""

    OPERATION_STARTED = "operation.started"  # POST: a new export was queued
    OPERATION_READ = "operation.read"  # GET by id (and a repeated start answered from its key)
    OPERATION_LISTED = "operation.listed"  # GET the collection or its $count
    OPERATION_UPDATED = "operation.updated"  # PATCH that changed the operation
    OPERATION_DELETED = "operation.deleted"  # DELETE: the export is cancelled or removed
    PACKAGE_PUBLISHED = "package.published"  # a worker published the package
    PACKAGE_DELETED = "package.deleted"  # its operation was deleted, or retention expired it
    # ... but its target refused (a 403, a presigned URL, a location no longer permitted): the
    # package stays where it was published
    PACKAGE_DELETION_REFUSED = "package.deletionRefused"
    PACKAGE_DOWNLOADED = "package.downloaded"  # GET .../package handed the package out
    USER_READ = "user.read"  # GET /users or /users/{id}
    ACCESS_DENIED = "access.denied"  # 403: a valid token without the route's permission
    ERASURE_REQUESTED = "erasure.requested"  # POST .../erasePersonalData: an erasure was queued
    ERASURE_APPROVED = "erasure.approved"  # POST .../approve by another principal
    ERASURE_SOURCE_COMMITTED = "erasure.sourceCommitted"  # a worker committed one source
    ERASURE_COMPLETED = "erasure.completed"  # its dry-run package or receipt was published


def stored_action(value: str) -> AuditAction:
    """The stored action; a value outside the vocabulary is kept as it is (as a plain string
    subclass), so `verify` reports the hash that no longer matches rather than failing."""
    try:
        return AuditAction(value)
    except ValueError:
        return value  # type: ignore[return-value]  # kept as stored: see the docstring


class AuditRecord(NamedTuple):
    """What happened: an entry before it has its place in the chain. (A named tuple: made on
    the event loop for every read, where a frozen dataclass costs several times as much.)"""

    action: AuditAction
    subject: str
    at: datetime
    app_id: str | None = None
    user_id: str | None = None
    operation_id: str | None = None
    client: str | None = None
    request_id: str | None = None


# Where the fields after `at` start (app_id .. request_id): stored in this order, as they are.
AFTER_AT = AuditRecord._fields.index("at") + 1

_JSON_NAMES = {
    "action": "action",
    "subject": "subject",
    "at": "at",
    "app_id": "appId",
    "user_id": "userId",
    "operation_id": "operationId",
    "client": "client",
    "request_id": "requestId",
}


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An entry of the chain."""

    sequence: int
    record: AuditRecord
    previous_hash: str  # the link's: the entry's own, or its block's
    hash: str
    block: int | None = None  # in a block: the block's first sequence

    def as_json(self) -> dict[str, Any]:
        record = self.record._asdict()
        return {
            "sequence": self.sequence,
            **{_JSON_NAMES[name]: value for name, value in record.items()},
            "at": self.record.at.isoformat().replace("+00:00", "Z"),
            "previousHash": self.previous_hash,
            "hash": self.hash,
            "block": self.block,
        }


@dataclass(frozen=True, slots=True)
class AuditBlock:
    """A link of entries appended together (a row of `audit_block`), as stored; its entries
    are read with `chain.decode_block`."""

    first_sequence: int
    last_sequence: int
    first_at: int  # microseconds since the epoch
    last_at: int
    entries: bytes  # the JSON array `chain.encode_block` made
    previous_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which entries `AuditLog.entries` returns; None matches anything."""

    user_id: str | None = None
    subject: str | None = None
    action: AuditAction | None = None
    operation_id: str | None = None
    since: datetime | None = None  # at or after
    until: datetime | None = None  # before
    limit: int | None = None  # the newest this many

    def matches(self, record: AuditRecord) -> bool:
        """The filter applied to one entry (of a block), as `AuditLog`'s query applies it to
        single entries; `limit` is the caller's."""
        return (
            (self.user_id is None or record.user_id == self.user_id)
            and (self.subject is None or record.subject == self.subject)
            and (self.action is None or record.action == self.action)
            and (self.operation_id is None or record.operation_id == self.operation_id)
            and (self.since is None or record.at >= self.since)
            and (self.until is None or record.at < self.until)
        )


@dataclass(frozen=True, slots=True)
class Verification:
    """What `verify` found: `problem` is None when the chain is intact."""

    entries: int  # how many entries were checked
    head_hash: str  # the last entry's hash (the genesis hash when there are none)
    broken_at: int | None = None  # the sequence of the first bad entry
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None
