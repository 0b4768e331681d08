"""The operation store: every query on the `operations` table lives here.

The store owns an operation's lifecycle fields (id, times, status, progress, version); callers
say what they want changed and the store decides what that means for the row. It is synchronous
and fast for single-row work, so on SQLite the web layer calls `get` inline on the event loop
(`Database.blocking_reads_are_cheap`) and sends the heavier `list`/`count` to a thread.

The same statements run on SQLite and PostgreSQL (store/database.py). Every read-modify-write
is written to be sound with several API processes on one PostgreSQL database, where
transactions are READ COMMITTED: a row read in order to change it is locked (`FOR UPDATE`,
compiled to nothing on SQLite, whose transactions hold the write lock from their start), and
idempotency keys are unique in the table, so two concurrent starts with one key make one
operation. Each method's docstring says how.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Delete,
    Float,
    Integer,
    Update,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
)

from datapolicy.errors import Conflict, Forbidden, InvalidRequest, NotFound, PreconditionFailed
from datapolicy.model import (
    MAX_STORAGE_LOCATION_LENGTH,
    MAX_USER_ID_LENGTH,
    PROGRESS_SCALE,
    PROPERTIES,
    Approval,
    ApprovalStatus,
    Operation,
    OperationError,
    OperationStatus,
    OperationType,
    ProgressDetail,
    Property,
    format_datetime,
    graph_profile_operation,
    principal_json,
    utc_now,
)
from datapolicy.odata.expressions import Value
from datapolicy.odata.options import QueryOptions
from datapolicy.odata.skiptoken import OrderKey, SkipToken, effective_order
from datapolicy.odata.sql import (
    Parameter,
    Parameterized,
    after_clause,
    order_clauses,
    parameterize,
    where_clause,
)
from datapolicy.store.database import Database, Transaction
from datapolicy.store.tables import operations
from datapolicy.store.timestamps import from_micros, to_micros

ROW = (
    operations.c.id,
    operations.c.user_id,
    operations.c.status,
    operations.c.progress,
    operations.c.storage_location,
    operations.c.submitted_at,
    operations.c.completed_at,
    operations.c.version,
    operations.c.error_code,
    operations.c.error_message,
    operations.c.operation_type,
    operations.c.progress_part,
    operations.c.records_written,
    operations.c.bytes_written,
    operations.c.approval_pending,
    operations.c.approved_by,
    operations.c.approved_at,
    operations.c.dry_run,
    operations.c.requested_by,
)
COLUMNS: dict[str, ColumnElement[Any]] = {
    name: operations.c[prop.attribute]
    for name, prop in PROPERTIES.items()
    if not prop.edm_type.is_complex
}


@dataclass(frozen=True, slots=True)
class View:
    """What list and count queries see of an operation: the `columns` their `$filter`,
    `$search`, `$orderby` and `$skiptoken` compare, and the operation they show (`present`),
    whose values a `$skiptoken` records."""

    columns: dict[str, ColumnElement[Any]]
    present: Callable[[Operation], Operation]


STORED = View(COLUMNS, lambda operation: operation)
#: The Graph profile's view (web/test_double/profile.py, `graph_profile_operation`): `status`
#: never `notStarted`, `progress` from 0 to 1, so that a query keeps and orders what the
#: profile's answers show.
GRAPH_PROFILE = View(
    {
        **COLUMNS,
        "status": case(
            (
                operations.c.status == OperationStatus.NOT_STARTED.value,
                OperationStatus.RUNNING.value,
            ),
            else_=operations.c.status,
        ),
        "progress": operations.c.progress / literal(PROGRESS_SCALE, Float),
    },
    graph_profile_operation,
)
VISIBLE = operations.c.deleted_at.is_(None)  # rows whose deletion was requested are gone to clients
IDEMPOTENCY_WINDOW = timedelta(hours=24)
MAX_IDEMPOTENCY_KEY_LENGTH = 200
_BY_ID = select(*ROW).where(operations.c.id == bindparam("id"), VISIBLE)
_LOCK_BY_ID = _BY_ID.with_for_update()  # SQLite: no clause (the transaction holds the lock)
_STATUSES = {status.value: status for status in OperationStatus}
_FAILED = OperationStatus.FAILED.value
# The compiled SQL of this many list (and count) query shapes is kept per store.
QUERY_SHAPES_CACHED = 256

Precondition = Callable[[Operation], bool]
# What a change leaves on the audit trail (store/audit/log.py), run inside the change's
# transaction with the operation as changed (as it was, for a deletion) once the change is
# written: if it raises (the trail cannot take the entry), the change is rolled back. The store
# knows nothing of the trail; the caller says what to record.
Recorder = Callable[[Transaction, Operation], None]


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[tuple[Any, ...]]  # the page's operations as stored, in `ROW`'s columns
    next: SkipToken | None  # where the next page starts, if there is one
    count: int | None  # the total matching count, when it was asked for

    @property
    def items(self) -> list[Operation]:
        """The page's operations. A list response is written from `rows` directly
        (web/routes/serialize.py), which costs a fraction of making these."""
        return [to_operation(row) for row in self.rows]


@dataclass(frozen=True, slots=True)
class _QueryShape:
    """What a list or count statement's SQL depends on: its conditions with their literals
    replaced by parameters (odata/sql.py), the order, and whether it starts after a
    `$skiptoken` (where its null values are) or at an offset. Requests of one shape differ only
    in their parameters' values, so they share one compiled statement."""

    conditions: tuple[Parameterized, ...]
    keys: tuple[OrderKey, ...] = ()
    after: tuple[Parameter | None, ...] | None = None
    offset: bool = False


def encode(prop: Property, value: Value) -> Any:
    """A Python value of a property -> the value stored in its column."""
    if isinstance(value, datetime):
        return to_micros(value)
    if isinstance(value, OperationStatus):
        return value.value
    return value


def to_operation(row: tuple[Any, ...]) -> Operation:
    (
        id_,
        user_id,
        status,
        progress,
        location,
        submitted,
        completed,
        version,
        error_code,
        error_message,
        operation_type,
        part,
        records,
        nbytes,
        pending,
        approved_by,
        approved_at,
        dry_run,
        requested_by,
    ) = row
    return Operation(
        id=id_,
        user_id=user_id,
        status=_STATUSES.get(status) or OperationStatus(status),
        progress=progress,
        storage_location=location,
        submitted_at=from_micros(submitted),
        completed_at=None if completed is None else from_micros(completed),
        version=version,
        error=public_error(status, error_code, error_message),
        operation_type=OperationType(operation_type),
        progress_detail=progress_detail(part, records, nbytes),
        approval=approval(pending, requested_by, approved_by, approved_at),
        # A boolean on PostgreSQL, 0 or 1 on SQLite.
        dry_run=None if dry_run is None else bool(dry_run),
    )


def approval(
    pending: int, requested_by: str | None, approved_by: str | None, approved_at: int | None
) -> Approval | None:
    """The `approval` of a row's columns: pending while `approval_pending`, approved once
    `approve` recorded the approver, with who requested the erasure either way; None for an
    operation that needed none."""
    if pending:
        return Approval(ApprovalStatus.PENDING, requested_by=requested_by)
    if approved_by is None:
        return None
    return Approval(
        ApprovalStatus.APPROVED,
        approved_by,
        None if approved_at is None else from_micros(approved_at),
        requested_by,
    )


def progress_detail(
    part: str | None, records: int | None, nbytes: int | None
) -> ProgressDetail | None:
    """The `progressDetail` of a row's columns: None until the worker recorded one (the three
    are written together: store/queue.py `_detail_columns`)."""
    if part is None or records is None or nbytes is None:
        return None
    return ProgressDetail(part, records, nbytes)


def public_error(
    status: str, error_code: str | None, error_message: str | None
) -> OperationError | None:
    """The error clients see, from a row's columns: a retried operation keeps its last error
    privately; clients see it once it failed."""
    fields = public_error_fields(status, error_code, error_message)
    return None if fields is None else OperationError(*fields)


def public_error_fields(
    status: str, error_code: str | None, error_message: str | None
) -> tuple[str, str] | None:
    """`public_error`'s code and message, without making an `OperationError` (a list page of
    failed operations writes a hundred of them)."""
    if status != _FAILED:
        return None
    return error_code or "unknown", error_message or ""


class OperationStore:
    def __init__(
        self,
        database: Database,
        clock: Callable[[], datetime] = utc_now,
        *,
        view: View = STORED,
    ):
        """`view`: what list and count queries see (`GRAPH_PROFILE` under the Graph profile)."""
        self.database = database
        self.clock = clock
        self.view = view
        # Compiled once, for this database's dialect: the GET-by-id hot path compiles nothing.
        self._get_by_id = database.compile(_BY_ID)[0]
        # List and count statements: compiled once per query shape.
        self._list_sql = functools.lru_cache(QUERY_SHAPES_CACHED)(self._compile_list)
        self._count_sql = functools.lru_cache(QUERY_SHAPES_CACHED)(self._compile_count)

    # --- reads ---------------------------------------------------------------------------

    def ping(self, timeout: float) -> None:
        """Raise unless the store's database answers within about `timeout` seconds."""
        self.database.ping(timeout)

    def get(self, operation_id: str) -> Operation:
        return to_operation(self.get_row(operation_id))

    def get_row(self, operation_id: str) -> tuple[Any, ...]:
        """The operation's row (`ROW`'s columns), for writing it out without making an
        `Operation` (web/routes/serialize.py `entity_row`)."""
        if "\x00" in operation_id:  # no id has one (and PostgreSQL's text cannot hold it)
            raise _not_found(operation_id)
        row = self.database.fetch_one(self._get_by_id, {"id": operation_id})
        if row is None:
            raise _not_found(operation_id)
        return row

    def published(self, operation_id: str) -> tuple[Operation, str | None]:
        """The operation and where its package was published (None until it is complete):
        what a package download needs, read together so the two cannot disagree."""
        rows = []
        if "\x00" not in operation_id:
            rows = self.database.fetch_all(
                select(*ROW, operations.c.package_location).where(
                    operations.c.id == operation_id, VISIBLE
                )
            )
        if not rows:
            raise _not_found(operation_id)
        return to_operation(rows[0][: len(ROW)]), rows[0][len(ROW)]

    def list(self, options: QueryOptions) -> Page:
        size = options.page_size
        rows: list[tuple[Any, ...]] = []
        if size:
            params: dict[str, Any] = {"page_limit": size + 1}
            shape = _QueryShape(_conditions(options, params), effective_order(options.orderby))
            if options.skiptoken is not None:
                shape = replace(shape, after=_after(shape.keys, options.skiptoken, params))
            elif options.skip:
                shape = replace(shape, offset=True)
                params["page_offset"] = options.skip
            sql, constants = self._list_sql(shape)
            rows = self.database.fetch_rows(sql, {**constants, **params})
        next_token = None
        if len(rows) > size:
            last = self.view.present(to_operation(rows[size - 1]))
            next_token = SkipToken.for_row(last, options.orderby, options.maxpagesize)
        total = self.count(options) if options.count else None
        return Page(rows[:size], next_token, total)

    def count(self, options: QueryOptions) -> int:
        params: dict[str, Any] = {}
        shape = _QueryShape(_conditions(options, params))
        sql, constants = self._count_sql(shape)
        total: int = self.database.fetch_rows(sql, {**constants, **params})[0][0]
        return total

    def _compile_list(self, shape: _QueryShape) -> tuple[str, dict[str, Any]]:
        """The SQL of a list query shape, and the values of the constants SQLAlchemy binds in it
        (a LIKE pattern's `%`); the shape's own parameters are bound by each request."""
        statement = (
            select(*ROW)
            .where(VISIBLE, *_where(shape, self.view.columns))
            .order_by(*order_clauses(shape.keys, self.view.columns))
            .limit(bindparam("page_limit", type_=Integer))
        )
        if shape.after is not None:
            statement = statement.where(after_clause(shape.keys, shape.after, self.view.columns))
        if shape.offset:
            statement = statement.offset(bindparam("page_offset", type_=Integer))
        return self.database.compile(statement)

    def _compile_count(self, shape: _QueryShape) -> tuple[str, dict[str, Any]]:
        statement = (
            select(func.count())
            .select_from(operations)
            .where(VISIBLE, *_where(shape, self.view.columns))
        )
        return self.database.compile(statement)

    def status_summary(self) -> dict[OperationStatus, tuple[int, datetime | None]]:
        """For each status present: how many operations have it and when the oldest of them
        was submitted (the metrics scrape). One GROUP BY that the status index (status,
        submitted_at, id) covers; rows whose deletion was requested are counted too, to keep it
        covered, until their cleanup removes them."""
        rows = self.database.fetch_all(
            select(operations.c.status, func.count(), func.min(operations.c.submitted_at)).group_by(
                operations.c.status
            )
        )
        return {
            OperationStatus(status): (count, None if first is None else from_micros(first))
            for status, count, first in rows
        }

    # --- writes --------------------------------------------------------------------------

    def create(
        self,
        user_id: str,
        storage_location: str | None,
        idempotency_key: str | None = None,
        record: Recorder | None = None,
        *,
        operation_type: OperationType = OperationType.EXPORT,
        erasure_state: str | None = None,
        approval_pending: bool = False,
        dry_run: bool = False,
        requested_by: str | None = None,
    ) -> tuple[Operation, bool]:
        """A new notStarted operation, or, when `idempotency_key` was used for one in the last
        24 hours, that one. The flag says whether a new operation was created; `record` runs
        for a new one only, in its transaction. A key that was used for a different request
        (another user, storage location or operation type, or an erasure's other `dry_run`,
        the flag its `erasure_state` holds) is a `Conflict`: its operation answers only the
        request that started it.

        An erasure's `dry_run` and `requested_by` (the caller, `[application, subject]`) are
        stored in columns of their own too, as its `dryRun` and `approval.requestedBy`; an
        export has neither.

        Concurrent starts with one key (several API processes) make one operation: the key's
        index is unique, and the insert yields to a row that holds the key (`ON CONFLICT DO
        NOTHING`, which on PostgreSQL waits for the transaction that inserted it). The loser
        then reads the winner's operation and returns it. A key is freed (set NULL on its old
        row) before reuse once its operation has left the window or was deleted; only such rows
        are freed, so a concurrent start's fresh row is never taken over.
        """
        _check_text("userId", user_id, MAX_USER_ID_LENGTH)
        if storage_location is not None:
            _check_text("storageLocation", storage_location, MAX_STORAGE_LOCATION_LENGTH)
        if idempotency_key is not None:
            _check_text("client-request-id", idempotency_key, MAX_IDEMPOTENCY_KEY_LENGTH)
        now = self.clock()
        erasure = operation_type is OperationType.ERASE
        requester = requested_by if erasure else None
        operation = Operation(
            id=str(uuid.uuid4()),
            user_id=user_id,
            status=OperationStatus.NOT_STARTED,
            progress=0.0,
            storage_location=storage_location,
            submitted_at=now,
            completed_at=None,
            version=1,
            operation_type=operation_type,
            approval=Approval(ApprovalStatus.PENDING, requested_by=requester)
            if approval_pending
            else None,
            dry_run=dry_run if erasure else None,
        )
        insert = self.database.insert(operations).values(
            id=operation.id,
            user_id=operation.user_id,
            status=operation.status.value,
            progress=operation.progress,
            storage_location=operation.storage_location,
            submitted_at=to_micros(now),
            version=operation.version,
            idempotency_key=idempotency_key,
            idempotency_request=None
            if idempotency_key is None
            else request_digest(user_id, storage_location, operation_type, dry_run),
            operation_type=operation_type.value,
            erasure_state=erasure_state,
            approval_pending=int(approval_pending),
            dry_run=operation.dry_run,
            requested_by=requester,
        )
        if idempotency_key is None:
            with self.database.transaction() as transaction:
                transaction.execute(insert)
                _record(record, transaction, operation)
            return operation, True
        window_start = to_micros(now - IDEMPOTENCY_WINDOW)
        asked = request_digest(user_id, storage_location, operation_type, dry_run)
        for _ in range(3):
            with self.database.transaction() as transaction:
                existing = transaction.fetch_one(_by_idempotency_key(idempotency_key, window_start))
                if existing is not None:
                    return _same_request(existing, asked), False
                transaction.execute(
                    operations.update()
                    .where(
                        operations.c.idempotency_key == idempotency_key,
                        or_(
                            operations.c.submitted_at <= window_start,
                            operations.c.deleted_at.is_not(None),
                        ),
                    )
                    .values(idempotency_key=None)
                )
                inserted = transaction.execute(
                    insert.on_conflict_do_nothing(index_elements=[operations.c.idempotency_key])
                )
                if inserted:
                    _record(record, transaction, operation)
                    return operation, True
                existing = transaction.fetch_one(_by_idempotency_key(idempotency_key, window_start))
                if existing is not None:
                    return _same_request(existing, asked), False
            # The row that held the key was freed or deleted meanwhile: try again.
        raise Conflict(
            "Concurrent requests with the same client-request-id (or Operation-Id) are changing "
            "its operation; retry.",
        )

    def find_started(
        self,
        idempotency_key: str,
        user_id: str,
        storage_location: str | None,
        operation_type: OperationType = OperationType.EXPORT,
        dry_run: bool = False,
    ) -> Operation | None:
        """The operation started with this idempotency key in the last 24 hours, if any; a
        `Conflict` if that start asked for something else (see `create`)."""
        window_start = to_micros(self.clock() - IDEMPOTENCY_WINDOW)
        rows = self.database.fetch_all(_by_idempotency_key(idempotency_key, window_start))
        asked = request_digest(user_id, storage_location, operation_type, dry_run)
        return _same_request(rows[0], asked) if rows else None

    def update(
        self,
        operation_id: str,
        changes: dict[str, Any],
        precondition: Precondition,
        record: Recorder | None = None,
    ) -> Operation:
        """Apply a client's changes (OData property name -> value) if the precondition holds.

        Only `storageLocation` is client-writable, and only while the operation is notStarted
        and, for an erasure, not yet approved.
        The row is locked while the precondition (If-Match) and the status are checked and the
        change is written, so a concurrent PATCH, DELETE or claim waits (a claim skips it) and
        then sees the new version: two PATCHes with the same If-Match cannot both succeed.
        `record` runs when something changed, in the transaction.
        """
        with self.database.transaction() as transaction:
            current = self._locked(transaction, operation_id)
            if not precondition(current):
                raise _stale(operation_id)
            values = {
                PROPERTIES[name].attribute: value
                for name, value in changes.items()
                if getattr(current, PROPERTIES[name].attribute) != value
            }
            if not values:
                return current
            if current.approval is not None and current.approval.status is ApprovalStatus.APPROVED:
                raise Conflict(
                    f"The erasure '{operation_id}' is approved, and what was approved is what "
                    "runs: it cannot be changed. Delete it and start another.",
                    code="OperationNotModifiable",
                )
            if current.status is not OperationStatus.NOT_STARTED:
                raise Conflict(
                    f"The operation '{operation_id}' is {current.status.value}; it can only "
                    "be changed while it is notStarted.",
                    code="OperationNotModifiable",
                )
            if values.get("storage_location") is not None:
                _check_text(
                    "storageLocation", values["storage_location"], MAX_STORAGE_LOCATION_LENGTH
                )
            transaction.execute(
                operations.update()
                .where(operations.c.id == operation_id)
                .values(**values, version=current.version + 1)
            )
            updated = replace(current, **values, version=current.version + 1)
            _record(record, transaction, updated)
        return updated

    def approve(
        self,
        operation_id: str,
        approver: str,
        record: Recorder | None = None,
        precondition: Precondition | None = None,
    ) -> Operation:
        """Approve an erasure that waits for approval (docs/erasure.md): by a principal other
        than the one who requested it (403 otherwise: the same subject through another client
        application is the same principal); 409 if it does not wait; 412 unless `precondition`
        (If-Match: the version the approver read) holds. The approver and the time go into its
        erasure state; `record` runs in the transaction."""
        with self.database.transaction() as transaction:
            current = self._locked(transaction, operation_id)
            if precondition is not None and not precondition(current):
                raise _stale(operation_id)
            state_text = transaction.fetch_one(
                select(operations.c.erasure_state).where(operations.c.id == operation_id)
            )
            assert state_text is not None  # locked above
            if current.approval is None or current.approval.status is not ApprovalStatus.PENDING:
                raise Conflict(
                    f"The dataPolicyOperation '{operation_id[:100]}' does not wait for approval.",
                    code="notAwaitingApproval",
                )
            state = orjson.loads(state_text[0] or "{}")
            if _subject(state.get("requestedBy")) == _subject(approver):
                raise Forbidden(
                    "An erasure is approved by a principal other than the one who requested it."
                )
            now = self.clock()
            state["approvedBy"] = approver
            state["approvedAt"] = format_datetime(now)
            transaction.execute(
                operations.update()
                .where(operations.c.id == operation_id)
                .values(
                    approval_pending=0,
                    approved_by=approver,
                    approved_at=to_micros(now),
                    erasure_state=orjson.dumps(state).decode(),
                    version=current.version + 1,
                )
            )
            updated = replace(
                current,
                version=current.version + 1,
                approval=Approval(
                    ApprovalStatus.APPROVED, approver, now, current.approval.requested_by
                ),
            )
            _record(record, transaction, updated)
        return updated

    def delete(
        self, operation_id: str, precondition: Precondition, record: Recorder | None = None
    ) -> Operation:
        """Delete an operation, as far as clients are concerned, and return it as it was.

        An operation that never ran or that failed has nothing to clean up and its row goes at
        once. A running one is marked: its worker sees the mark at its next heartbeat, stops,
        removes its partial output and the row. A complete one is marked too, and a worker
        deletes its package before the row. Either way it is gone from the API immediately.

        The row is locked while its status decides between the two, so a worker cannot claim
        a notStarted operation in between (its claim skips the locked row, and then finds it
        gone); a claim that came first is waited for, and the operation is then running.
        `record` runs in the transaction: an operation whose deletion is not on the trail is
        not deleted.
        """
        with self.database.transaction() as transaction:
            current = self._locked(transaction, operation_id)
            if not precondition(current):
                raise _stale(operation_id)
            statement: Update | Delete
            if current.status in (OperationStatus.RUNNING, OperationStatus.COMPLETE):
                statement = (
                    operations.update()
                    .where(operations.c.id == operation_id)
                    .values(deleted_at=to_micros(self.clock()), next_attempt_at=None)
                )
            else:
                statement = operations.delete().where(operations.c.id == operation_id)
            transaction.execute(statement)
            _record(record, transaction, current)
        return current

    @staticmethod
    def _locked(transaction: Transaction, operation_id: str) -> Operation:
        """The operation, its row locked until the transaction ends."""
        row = None
        if "\x00" not in operation_id:
            row = transaction.fetch_one(_LOCK_BY_ID.params(id=operation_id))
        if row is None:
            raise _not_found(operation_id)
        return to_operation(row)


def _conditions(options: QueryOptions, params: dict[str, Any]) -> tuple[Parameterized, ...]:
    """The `$filter` and `$search` trees, parameterized; their values are added to `params`."""
    return tuple(
        parameterize(node, encode, prefix, params)
        for prefix, node in (("f", options.filter), ("s", options.search))
        if node is not None
    )


def _where(shape: _QueryShape, columns: dict[str, ColumnElement[Any]]) -> list[ColumnElement[bool]]:
    return [where_clause(condition.tree, columns) for condition in shape.conditions]


def _after(
    keys: tuple[OrderKey, ...], token: SkipToken, params: dict[str, Any]
) -> tuple[Parameter | None, ...]:
    """The `$skiptoken`'s key values as parameters (None where a value is null)."""
    after: list[Parameter | None] = []
    for index, (key, value) in enumerate(zip(keys, token.values, strict=True)):
        if value is None:
            after.append(None)
        else:
            name = f"a{index}"
            params[name] = encode(PROPERTIES[key.name], value)
            after.append(Parameter(name))
    return tuple(after)


def _subject(caller: object) -> object:
    """The subject of a stored caller (`[application, subject]`, model.py `principal_json`):
    who approves, whichever client application the token was issued to."""
    principal = principal_json(caller)
    return principal["subject"] if isinstance(principal, dict) else principal


def _record(record: Recorder | None, transaction: Transaction, operation: Operation) -> None:
    if record is not None:
        record(transaction, operation)


def _by_idempotency_key(key: str, window_start: int) -> Any:
    return select(*ROW, operations.c.idempotency_request).where(
        operations.c.idempotency_key == key,
        operations.c.submitted_at > window_start,
        VISIBLE,
    )


def request_digest(
    user_id: str,
    storage_location: str | None,
    operation_type: OperationType = OperationType.EXPORT,
    dry_run: bool = False,
) -> str:
    """What a start asked for, as the 64 hex digits stored beside its idempotency key: the user
    and location (an export's digest, as it was before erasures), and for an erasure also that
    it is one and whether it is a dry run."""
    asked: list[object] = [user_id, storage_location]
    if operation_type is OperationType.ERASE:
        asked += [operation_type.value, dry_run]
    return hashlib.sha256(orjson.dumps(asked)).hexdigest()


def _same_request(row: tuple[Any, ...], asked: str) -> Operation:
    """The operation of a row found by its idempotency key, if the start that made it asked for
    the same (`asked`, its `request_digest`); else a 409, which names neither (rows from before
    migration 0009 recorded no request and are refused too: fail closed)."""
    if row[len(ROW)] != asked:
        raise Conflict(
            "The client-request-id (or Operation-Id) was already used within the last 24 hours "
            "to start an operation for a different user or storage location, or of another "
            "kind (export, erasure, dry run); send a new id for a new request.",
            code="IdempotencyKeyReused",
        )
    return to_operation(row[: len(ROW)])


def _check_text(name: str, value: str, max_length: int) -> None:
    """What the columns can hold, checked on both databases alike (SQLite would store more)."""
    if len(value) > max_length:
        raise InvalidRequest(
            f"The {name} is {len(value)} characters long; at most {max_length} are allowed.",
            target=name,
        )
    if "\x00" in value:
        raise InvalidRequest(f"The {name} contains the character NUL.", target=name)


def _not_found(operation_id: str) -> NotFound:
    return NotFound(
        f"The dataPolicyOperation '{operation_id[:100]}' does not exist.",
        code="ResourceNotFound",
    )


def _stale(operation_id: str) -> PreconditionFailed:
    return PreconditionFailed(
        f"The If-Match ETag does not match the current ETag of the dataPolicyOperation "
        f"'{operation_id}'; read it again and retry.",
    )
