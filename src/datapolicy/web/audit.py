"""Audit entries for API requests: who (the principal `web/auth.py` put in the scope), from
where (the client's address) and the request id, around the store's `AuditLog`.

Changes (start, PATCH, DELETE) are appended at once, after the change and before the response
is sent (`record`, in a worker thread: it writes). Reads and lists, the hot path, are handed to
an `AuditBuffer` (`later`: a lock and a list append), which appends them in batches.

The client's address is the peer's, unless the peer is one of `[audit] trusted_proxies`: then
it is the last address in `X-Forwarded-For` that is not itself a trusted proxy (the one the
nearest trusted proxy saw), so a client cannot put a made-up address in front.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Network

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import Scope

from datapolicy.auth.tokens import Principal
from datapolicy.model import Operation, utc_now
from datapolicy.store.audit import AuditAction, AuditBuffer, AuditLog, AuditRecord

Network = IPv4Network | IPv6Network


class RequestAudit:
    def __init__(self, log: AuditLog, buffer: AuditBuffer, trusted_proxies: Iterable[Network] = ()):
        self.log = log
        self.buffer = buffer
        self.trusted_proxies = tuple(trusted_proxies)

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

    async def started(self, scope: Scope, operation: Operation, created: bool) -> None:
        """A start: `operation.started` when it queued a new export; a repeated start (its
        idempotency key seen before) only reads the existing operation: `operation.read`."""
        if created:
            await self.record(
                scope,
                AuditAction.OPERATION_STARTED,
                user_id=operation.user_id,
                operation_id=operation.id,
            )
        else:
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
            client=client_address(scope, self.trusted_proxies),
            request_id=state.get("request_id"),
        )


def audit_of(request: Request) -> RequestAudit:
    return request.app.state.audit


def client_address(scope: Scope, trusted_proxies: tuple[Network, ...]) -> str | None:
    """The peer's address; behind a trusted proxy, the nearest address in X-Forwarded-For
    that is not a trusted proxy itself (an address a client wrote further left is ignored)."""
    client = scope.get("client")
    peer = client[0] if client else None
    if peer is None or not _trusted(peer, trusted_proxies):
        return peer
    forwarded = [
        part.strip()
        for name, value in scope["headers"]
        if name == b"x-forwarded-for"
        for part in value.decode("latin-1").split(",")
    ]
    for address in reversed(forwarded):
        if not _trusted(address, trusted_proxies):
            return address if _is_address(address) else peer
    return peer


def _trusted(address: str, trusted_proxies: tuple[Network, ...]) -> bool:
    if not trusted_proxies:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted_proxies)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
