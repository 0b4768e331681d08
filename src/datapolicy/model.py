"""The dataPolicyOperation entity, independent of HTTP and of storage.

`PROPERTIES` is the entity's OData shape (names, EDM types, nullability): the query layer checks
`$filter`, `$orderby` and `$select` against it, the store maps it to columns and the web layer
serialises with it, so the three can never disagree about what a property is called or holds.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime

ENTITY_SET = "dataPolicyOperations"
ENTITY_TYPE = "microsoft.graph.dataPolicyOperation"
STATUS_TYPE = "microsoft.graph.dataPolicyOperationStatus"
#: A caller as `approval.requestedBy` and `approvedBy` spell it: the token's application and
#: subject.
PRINCIPAL_TYPE = "microsoft.graph.dataPolicyOperationPrincipal"


class OperationStatus(enum.StrEnum):
    """Graph's dataPolicyOperationStatus, with its exact lower-camel member names."""

    NOT_STARTED = "notStarted"
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    UNKNOWN_FUTURE_VALUE = "unknownFutureValue"

    @property
    def is_final(self) -> bool:
        return self in (OperationStatus.COMPLETE, OperationStatus.FAILED)


#: Each status's value in Graph's `dataPolicyOperationStatus` enum (its declaration order, as
#: `$metadata` declares it): what `status` is ordered and compared by (`gt`, `$orderby`), as
#: ASP.NET OData compares enum members, so that notStarted < running < complete < failed.
STATUS_VALUES: dict[OperationStatus, int] = {
    status: value for value, status in enumerate(OperationStatus)
}


#: `progress` runs from 0 to this (100); the Graph profile (`serve --profile graph`) shows it
#: divided by it, from 0 to 1, the scale Graph's backend appears to use
#: (docs/graph-compatibility.md, "The Graph profile").
PROGRESS_SCALE = 100.0


def graph_profile_status(status: str) -> str:
    """A status as the Graph profile shows it: Graph's backend never reports `notStarted`, an
    operation is `running` from the start."""
    return OperationStatus.RUNNING.value if status == OperationStatus.NOT_STARTED else status


class OperationType(enum.StrEnum):
    """What an operation does (datapolicy's extension property `operationType`)."""

    EXPORT = "exportPersonalData"
    ERASE = "erasePersonalData"

    @property
    def noun(self) -> str:
        """What the logs call such an operation: "export" or "erasure"."""
        return "erasure" if self is OperationType.ERASE else "export"


class EdmType(enum.StrEnum):
    """The EDM primitive types our properties use."""

    STRING = "Edm.String"
    BOOLEAN = "Edm.Boolean"
    DOUBLE = "Edm.Double"
    DATE_TIME_OFFSET = "Edm.DateTimeOffset"
    ENUM = STATUS_TYPE
    # Complex: selectable, neither filterable nor orderable.
    PUBLIC_ERROR = "microsoft.graph.publicError"
    PROGRESS_DETAIL = "microsoft.graph.dataPolicyOperationProgressDetail"
    APPROVAL = "microsoft.graph.dataPolicyOperationApproval"

    @property
    def is_complex(self) -> bool:
        return self in (EdmType.PUBLIC_ERROR, EdmType.PROGRESS_DETAIL, EdmType.APPROVAL)


@dataclass(frozen=True, slots=True)
class Property:
    name: str
    edm_type: EdmType
    nullable: bool
    attribute: str  # the attribute of `Operation` that holds the value


PROPERTIES: dict[str, Property] = {
    p.name: p
    for p in (
        Property("id", EdmType.STRING, False, "id"),
        Property("userId", EdmType.STRING, False, "user_id"),
        Property("status", EdmType.ENUM, False, "status"),
        Property("progress", EdmType.DOUBLE, False, "progress"),
        Property("storageLocation", EdmType.STRING, True, "storage_location"),
        Property("submittedDateTime", EdmType.DATE_TIME_OFFSET, False, "submitted_at"),
        Property("completedDateTime", EdmType.DATE_TIME_OFFSET, True, "completed_at"),
        # datapolicy's additions: why a failed operation failed; what the operation does; what
        # a running export is writing and how much it has written; whether an erasure waits
        # for another principal's approval, who requested it and who approved it; whether an
        # erasure is a dry run (null for exports).
        Property("error", EdmType.PUBLIC_ERROR, True, "error"),
        Property("operationType", EdmType.STRING, False, "operation_type"),
        Property("progressDetail", EdmType.PROGRESS_DETAIL, True, "progress_detail"),
        Property("approval", EdmType.APPROVAL, True, "approval"),
        Property("dryRun", EdmType.BOOLEAN, True, "dry_run"),
    )
}

# Limits on what a client may store, so that a row can never grow without bound.
MAX_USER_ID_LENGTH = 256
MAX_STORAGE_LOCATION_LENGTH = 2048


@dataclass(frozen=True, slots=True)
class OperationError:
    """Why an operation failed: a stable `code` to program against and a `message` for people
    that says what went wrong and where (never a credential)."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ProgressDetail:
    """What an export has written, as its worker last recorded it with `progress`
    (datapolicy's extension property `progressDetail`): the `part` it is writing (a table or
    query as `source/name`, a file as `source/path`), and the `records` and file `bytes`
    written so far, over all parts. Clients show the current table and rows per second
    from it (cli/progress.py)."""

    part: str
    records: int
    bytes: int

    def as_json(self) -> dict[str, str | int]:
        return {"part": self.part, "records": self.records, "bytes": self.bytes}


class ApprovalStatus(enum.StrEnum):
    """Where an erasure that needs approval stands (`approval.status`)."""

    PENDING = "pending"
    APPROVED = "approved"


@dataclass(frozen=True, slots=True)
class Approval:
    """An erasure's approval under `[erasure] approval = "required"` (datapolicy's extension
    property `approval`; docs/erasure.md): `pending` while it waits, notStarted, for a
    principal other than its requester; then `approved`, by whom (the caller as stored:
    the JSON array `[application, subject]`) and when. `requested_by`, stored alike, is who
    started the erasure (None if its start did not say: an erasure started, during a rolling
    upgrade, by a process that predates the property). Operations that need no approval
    (exports, erasures under `approval = "none"`) have none."""

    status: ApprovalStatus
    approved_by: str | None = None
    approved_at: datetime | None = None
    requested_by: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "status": self.status.value,
            "requestedBy": principal_or_none(self.requested_by),
            "approvedBy": principal_or_none(self.approved_by),
            "approvedDateTime": None
            if self.approved_at is None
            else format_datetime(self.approved_at),
        }


def principal_json(caller: object) -> object:
    """`{"application": ..., "subject": ...}` from a stored caller, the JSON array
    `[application, subject]` (web/routes/operations.py `caller_of`), as the erasure receipt
    and `approval.requestedBy` and `approvedBy` spell a principal; anything else as it is."""
    try:
        application, subject = json.loads(caller)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return caller
    return {"application": application, "subject": subject}


def principal_or_none(caller: str | None) -> object:
    """`principal_json` of a stored caller, None for none."""
    return None if caller is None else principal_json(caller)


@dataclass(frozen=True, slots=True)
class Operation:
    """One data policy operation as the server owns it.

    `version` increases by one on every change and is the basis of the entity's ETag.
    """

    id: str
    user_id: str
    status: OperationStatus
    progress: float
    storage_location: str | None
    submitted_at: datetime
    completed_at: datetime | None
    version: int
    error: OperationError | None = None
    operation_type: OperationType = OperationType.EXPORT
    progress_detail: ProgressDetail | None = None  # None until an export wrote its first part
    approval: Approval | None = None  # None: needs no approval
    dry_run: bool | None = None  # an erasure's: whether it is a dry run; None for exports

    @property
    def etag(self) -> str:
        return etag_of(self.version)


def etag_of(version: int) -> str:
    """The weak ETag of an operation at `version`."""
    return f'W/"{version}"'


def utc_now() -> datetime:
    """The current time, truncated to microseconds (the store's resolution)."""
    return datetime.now(UTC)


def format_datetime(value: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, as Graph writes DateTimeOffset values."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # isoformat is several times faster than strftime, and this runs for every date served.
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def graph_profile_operation(operation: Operation) -> Operation:
    """An operation as the Graph profile shows it: `graph_profile_status`, and `progress`
    from 0 to 1."""
    return replace(
        operation,
        status=OperationStatus(graph_profile_status(operation.status)),
        progress=operation.progress / PROGRESS_SCALE,
    )
