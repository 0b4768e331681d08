"""Bearer authentication in front of everything but the public routes: a step of the request
pipeline (web/middleware/pipeline.py), after the ids (so its errors carry them) and before the read
fast path, which it must protect too. What a route needs is declared with it in the route table
(web/routes/table.py). A token seen before is answered from a `TokenCache`
(a dictionary look-up); a new one is verified in a worker thread, because fetching a rotated
JWKS may block. The principal goes into `scope["state"]["principal"]` for what comes after.

Failures are Graph's error bodies: 401 `InvalidAuthenticationToken` with a `WWW-Authenticate:
Bearer` challenge (RFC 6750: no error code when no token was sent), 403
`Authorization_RequestDenied` with the permission that is missing, 503 when the keys cannot be
fetched. A 403 leaves an `access.denied` audit entry naming the token's subject; a 401 leaves
none (there is no one to name, and anyone could fill the trail with them: they go to the log).

A 403 comes from a valid token, so it is its client's request like any other: it spends the
client's rate budget first (`ClientLimits`, shared with web/middleware/ratelimit.py; 429 once it is
spent). Its audit entries are budgeted too (`DENIED_AUDIT_RATE` a second per client,
`DENIED_AUDIT_BURST` at once): a refused attempt is security-relevant and the first ones are all on
the record, but a client repeating them cannot grow the trail without bound; past the budget each
403 goes to the log as a warning instead.

Refused tokens are budgeted per address (`[limits] auth_failure_rate`): each cost a signature
check, so an address that has sent too many gets 429 `TooManyRequests` for new tokens, before
any check, until its budget refills. Tokens already verified (in the cache) are not affected.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from datapolicy import logs
from datapolicy.auth.cache import TokenCache
from datapolicy.auth.permissions import Requirement
from datapolicy.auth.tokens import Principal, TokenValidator
from datapolicy.errors import DatapolicyError, Forbidden, TooManyRequests, Unauthenticated
from datapolicy.store.audit import AuditAction
from datapolicy.web.errors import render
from datapolicy.web.middleware.audit import RequestAudit
from datapolicy.web.middleware.ratelimit import ClientLimits, RateBudget, address_of, client_of

logger = logging.getLogger(__name__)

REALM = "datapolicy"
_FORBIDDEN = "Insufficient privileges to complete the operation."


# access.denied entries per client: a second on average, 100 at once.
DENIED_AUDIT_RATE = 1.0
DENIED_AUDIT_BURST = 100


class Authentication:
    def __init__(
        self,
        validator: TokenValidator,
        audit: RequestAudit,
        failures: RateBudget | None = None,
        limits: ClientLimits | None = None,
    ):
        self.validator = validator
        self.audit = audit  # a 403 leaves an access.denied entry (a 401 none: no one to name)
        self.cache = TokenCache()
        self.failures = failures  # refused tokens, per address
        self.limits = limits  # the clients' rate budgets, which a 403 spends too
        self.denials = RateBudget(DENIED_AUDIT_RATE, DENIED_AUDIT_BURST)  # audited 403s

    async def admit(self, scope: Scope, receive: Receive, send: Send, needed: Requirement) -> bool:
        """Whether the request's token shows what `needed` asks (a request that is not
        public); if not, the refusal has been sent. The principal goes into the scope's state."""
        try:
            token = _bearer_token(scope)
            principal = self.cache.get(token)
            if principal is None:
                principal = await self._verified(scope, token)
            if needed.permission is not None and needed.permission not in principal.permissions:
                self.deny(scope, principal)
                raise Forbidden(f"{_FORBIDDEN} The token lacks the {needed.permission} permission.")
        except DatapolicyError as exc:  # 401, 403, 429 or 503
            await _refuse(scope, receive, send, exc, needed.permission)
            return False
        scope["state"]["principal"] = principal
        logs.caller.set(principal.subject)  # the caller, on every log line below (logs.py)
        return True

    def deny(self, scope: Scope, principal: Principal, operation_id: str | None = None) -> None:
        """Account for a 403 (this middleware's, or a route's that judged more than the
        permission: web/routes/operations.py): the client's rate budget (429 when spent), then
        its audit entry, naming `operation_id` if given, while the client's audit budget lasts,
        else a warning in the log."""
        client = client_of(principal)
        if self.limits is not None and (wait := self.limits.take(scope["method"], client)):
            raise TooManyRequests(wait)
        if self.denials.take(client):
            logger.warning(
                "access denied to %s %s (not audited: this client's access.denied budget is spent)",
                scope["method"],
                scope["path"][:200],
            )
            return
        self.audit.later(
            scope, AuditAction.ACCESS_DENIED, principal=principal, operation_id=operation_id
        )

    async def _verified(self, scope: Scope, token: str) -> Principal:
        """The principal of a token not in the cache, verified in a thread."""
        if self.failures is not None and (wait := self.failures.wait(address_of(scope))):
            raise TooManyRequests(wait)
        try:
            principal = await asyncio.to_thread(self.validator.validate, token)
        except Unauthenticated:
            if self.failures is not None:
                self.failures.take(address_of(scope))
            raise
        self.cache.put(token, principal)
        return principal


def _bearer_token(scope: Scope) -> str:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("The Authorization header must be 'Bearer <token>'.")
            return token.strip()
    raise Unauthenticated("Access token is empty.")


async def _refuse(
    scope: Scope, receive: Receive, send: Send, error: DatapolicyError, permission: str | None
) -> None:
    await render(Request(scope), error, _challenge(scope, error, permission))(scope, receive, send)


def _challenge(
    scope: Scope, error: DatapolicyError, permission: str | None
) -> dict[str, str] | None:
    """RFC 6750's `WWW-Authenticate` for a 401 or 403 (none for a 429 or 503)."""
    challenge = f'Bearer realm="{REALM}"'
    if isinstance(error, Forbidden):
        return {
            "WWW-Authenticate": f'{challenge}, error="insufficient_scope", scope="{permission}"'
        }
    if not isinstance(error, Unauthenticated):
        return None
    if any(name == b"authorization" for name, _ in scope["headers"]):
        challenge += f', error="invalid_token", error_description="{error.message}"'
    return {"WWW-Authenticate": challenge}
