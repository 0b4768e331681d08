"""Audit entries for API requests: who (the principal `web/auth.py` put in the scope), from
where (the client's address) and the request id, around the store's `AuditLog`.

Changes (start, PATCH, DELETE) are appended in the change's own transaction (`recorder`, which
the store runs in a worker thread): a change whose entry cannot be written is rolled back and
answered 503 with Retry-After (store/audit.py, "fails closed"). A package download is recorded
before the package is handed out (`record`). Reads and lists, the hot path, are handed to an
`AuditBuffer` (`later`: a deque append), which appends them in blocks.

The client's address is the scope's: the peer's, or behind trusted proxies the client's as
`web/proxy.py` found it in `X-Forwarded-For`.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import Scope

from datapolicy.auth.tokens import Principal
from datapolicy.model import Operation, utc_now
from datapolicy.store.audit import AuditAction, AuditBuffer, AuditLog, AuditRecord
from datapolicy.store.database import Transaction
from datapolicy.store.operations import Recorder


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
    return request.app.state.audit
