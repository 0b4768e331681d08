"""Audit entries for API requests: who (the principal `web/middleware/auth.py` put in the scope),
from where (the client's address) and the request id, around the store's `AuditLog`.

Changes (start, PATCH, DELETE) are appended in the change's own transaction (`recorder`, which
the store runs in a worker thread): a change whose entry cannot be written is rolled back and
answered 503 with Retry-After (store/audit/log.py, "fails closed"). A package download is
recorded before the package is handed out (`record`). Reads and lists, the hot path, are handed
to the `AuditBuffer` (`later`: a deque append), which appends them as blocks from a thread of its
own, every `flush_seconds` or `max_pending` entries and when closed: a hard crash loses at most
that interval's read entries.

The client's address is the scope's: the peer's, or behind trusted proxies the client's as
`web/middleware/proxy.py` found it in `X-Forwarded-For`.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import Scope

from datapolicy.auth.tokens import Principal
from datapolicy.model import Operation, utc_now
from datapolicy.store.audit import AuditAction, AuditLog, AuditRecord
from datapolicy.store.database import Transaction
from datapolicy.store.operations import Recorder

logger = logging.getLogger(__name__)


class RequestAudit:
    def __init__(self, log: AuditLog, buffer: AuditBuffer):
        self.log = log
        self.buffer = buffer

    async def record(
        self,
        scope: Scope,
        action: AuditAction,
        *,
        user_id: str | None = None,
        operation_id: str | None = None,
    ) -> None:
        """Append an entry now (for changes)."""
        record = self.entry(scope, action, user_id=user_id, operation_id=operation_id)
        await run_in_threadpool(self.log.append, [record])

    def recorder(self, scope: Scope, action: AuditAction) -> Recorder:
        """The entry of a change this request makes, for the store to append in the change's
        transaction, naming the operation as the store changed it."""

        def record(transaction: Transaction, operation: Operation) -> None:
            entry = self.entry(scope, action, user_id=operation.user_id, operation_id=operation.id)
            self.log.append([entry], within=transaction)

        return record

    def started(self, scope: Scope, operation: Operation, created: bool) -> None:
        """After a start: a new export's `operation.started` was appended with it (`recorder`);
        a repeated start (its idempotency key seen before) only read the existing operation:
        `operation.read`."""
        if not created:
            self.later(
                scope,
                AuditAction.OPERATION_READ,
                user_id=operation.user_id,
                operation_id=operation.id,
            )

    def later(
        self,
        scope: Scope,
        action: AuditAction,
        *,
        user_id: str | None = None,
        operation_id: str | None = None,
        principal: Principal | None = None,
    ) -> None:
        """Hand an entry to the buffer (for reads and lists): appended within `flush_seconds`."""
        self.buffer.add(
            self.entry(
                scope, action, user_id=user_id, operation_id=operation_id, principal=principal
            )
        )

    def entry(
        self,
        scope: Scope,
        action: AuditAction,
        *,
        user_id: str | None = None,
        operation_id: str | None = None,
        principal: Principal | None = None,
    ) -> AuditRecord:
        state = scope.get("state") or {}
        principal = principal or state.get("principal")
        return AuditRecord(
            action=action,
            subject=principal.subject if principal is not None else "",
            app_id=principal.app_id if principal is not None else None,
            at=utc_now(),
            user_id=user_id,
            operation_id=operation_id,
            client=client[0] if (client := scope.get("client")) else None,
            request_id=state.get("request_id"),
        )


def audit_of(request: Request) -> RequestAudit:
    audit: RequestAudit = request.app.state.audit
    return audit


class AuditBuffer:
    """Entries appended in blocks from a thread of its own: for the hot path (reads), where a
    commit per request would cost each request a write, and a row and a hash per entry several
    microseconds of CPU (docs/benchmarks.md): a block is one row and one hash per flush.

    `add` only appends to a deque, which is safe against the flushing thread without a lock (a
    lock shared with the event loop made each flush hand the GIL back and forth with it). The
    thread appends what has gathered every `flush_seconds`, or sooner when `max_pending` are
    waiting, as blocks of at most `max_pending` entries; `close` appends the rest. If an append
    fails (the database is down), the entries are kept and tried again, up to `max_kept`;
    beyond that the oldest are dropped, with an error in the log."""

    def __init__(
        self,
        log: AuditLog,
        *,
        flush_seconds: float = 0.2,
        max_pending: int = 5000,
        max_kept: int = 100_000,
    ):
        self.log = log
        self.flush_seconds = flush_seconds
        self.max_pending = max_pending
        self.max_kept = max_kept
        self._pending: deque[AuditRecord] = deque()
        self._flushing = threading.Lock()  # one flush at a time (the thread's, close's, a test's)
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-buffer", daemon=True)
        self._thread.start()

    def add(self, record: AuditRecord) -> None:
        self._pending.append(record)
        if len(self._pending) >= self.max_pending:
            self._wake.set()

    def flush(self) -> None:
        """Append everything gathered so far (in the calling thread)."""
        with self._flushing:
            pending = self._pending
            while pending:
                block = [pending.popleft() for _ in range(min(len(pending), self.max_pending))]
                try:
                    self.log.append_block(block)
                except Exception:
                    self._keep(block)
                    raise

    def _keep(self, records: list[AuditRecord]) -> None:
        """Put entries that could not be appended back in front of the pending ones."""
        logger.exception("could not append %d audit entries; keeping them", len(records))
        self._pending.extendleft(reversed(records))
        excess = len(self._pending) - self.max_kept
        for _ in range(max(excess, 0)):
            self._pending.popleft()
        if excess > 0:
            logger.error("dropped %d audit entries that could not be appended", excess)

    def close(self) -> None:
        """Stop the thread and append what is left."""
        self._closed.set()
        self._wake.set()
        self._thread.join()
        self.flush()

    def _run(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except Exception:
                self._closed.wait(self.flush_seconds)  # logged by flush; try again later
