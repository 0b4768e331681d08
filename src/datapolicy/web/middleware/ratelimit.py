"""Per-client rate limits: 429 `TooManyRequests` with `Retry-After`, as Graph throttles.

The request pipeline (web/middleware/pipeline.py) spends a client's budget right after
authentication, so a client is who its token says it is: the client application and the subject
(`Principal.app_id`, `Principal.subject`), whichever token they come with. Public routes
(`$metadata`, the OpenAPI description) carry no token and are budgeted by the caller's address; the
server-root routes (probes, `/metrics`, the console) are answered before and never counted
(web/routes/table.py). Each client has two budgets (`[limits]`): writes (POST, PATCH, PUT, DELETE),
which start and change exports, and reads (everything else), which is polling. A refused request
costs the client nothing. A request `Authentication` refuses with 403 (a valid token without the
permission) costs its client the same as any other, there, before the 403 (`ClientLimits`,
shared): a client cannot send refused requests without limit.

Each budget is a GCRA (the generic cell rate algorithm, a token bucket kept as one number per
client: the time at which its bucket is full again). It is hand-written rather than taken from
the `limits` library because this runs in front of the GET by id, whose whole budget is about
40 µs: `limits`' in-memory strategies measured 8 µs (fixed window) to 21 µs (moving window) a
call, this one under 1 µs. Budgets are per process: N API processes behind a load balancer
let a client have N times the configured rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from datapolicy.auth.tokens import Principal
from datapolicy.config import LimitsConfig
from datapolicy.errors import TooManyRequests
from datapolicy.web.errors import render

#: Clients remembered per budget. A client that has been idle long enough to have its whole
#: burst back is forgotten first; past this, the longest-known are (they start afresh).
MAX_CLIENTS = 10_000
_WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})


class RateBudget:
    """One GCRA budget: `rate` requests a second per key, `burst` of them at once."""

    def __init__(
        self,
        rate: float,
        burst: int,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.interval = 1.0 / rate
        self.capacity = self.interval * burst  # how far ahead of now a key's time may run
        self.max_clients = max_clients
        self.clock = clock
        self.full_at: dict[object, float] = {}  # key -> when its bucket is full again

    def take(self, key: object) -> float:
        """Spend one request of `key`'s budget: 0 if allowed, else the seconds to wait."""
        now = self.clock()
        after = self._after(key, now)
        wait = after - self.capacity - now
        if wait > 0:
            return wait
        if len(self.full_at) >= self.max_clients and key not in self.full_at:
            self._forget(now)
        self.full_at[key] = after
        return 0.0

    def wait(self, key: object) -> float:
        """What `take` would answer, without spending anything."""
        now = self.clock()
        return max(0.0, self._after(key, now) - self.capacity - now)

    def _after(self, key: object, now: float) -> float:
        """When `key`'s bucket would be full again after one more request now."""
        full_at = self.full_at.get(key, now)
        return (full_at if full_at > now else now) + self.interval

    def _forget(self, now: float) -> None:
        """Make room: drop keys whose bucket is full (the same as unknown), and if that is not
        enough the oldest half, so that the next sweep is many requests away."""
        full_at = self.full_at
        for key in [key for key, at in full_at.items() if at <= now]:
            del full_at[key]
        excess = len(full_at) - self.max_clients // 2
        if excess > 0:
            for key in list(full_at)[:excess]:
                del full_at[key]


class ClientLimits:
    """A client's two budgets, writes and reads (None: that one is off). One instance is shared
    by the request pipeline and `Authentication`, which spends it for the requests it refuses with a
    403 (the client's token is valid: it is the client's budget all the same)."""

    def __init__(self, limits: LimitsConfig):
        self.writes = budget(limits.write_rate, limits.write_burst)
        self.reads = budget(limits.read_rate, limits.read_burst)

    def take(self, method: str, client: object) -> float:
        """Spend one request of `client`'s budget for `method`: 0 if allowed, else the wait."""
        spent = self.writes if method in _WRITES else self.reads
        return 0.0 if spent is None else spent.take(client)


def budget(rate: float, burst: int) -> RateBudget | None:
    """A budget of `rate` a second and `burst` at once; None (no limit) for a rate of 0."""
    return RateBudget(rate, burst) if rate > 0 else None


def address_of(scope: Scope) -> str:
    """The caller's address (behind trusted proxies, the client's: web/middleware/proxy.py)."""
    address = scope.get("client")
    return address[0] if address else ""


def client_in(scope: Scope) -> object:
    """A token's client as a tuple, an address as a string: the two never collide."""
    principal = scope["state"].get("principal")
    if principal is not None:
        return client_of(principal)
    return address_of(scope)


def client_of(principal: Principal) -> tuple[str | None, str]:
    """The client a token speaks for: its client application and subject."""
    return principal.app_id, principal.subject


async def throttled(scope: Scope, receive: Receive, send: Send, wait: float) -> None:
    """Graph's 429 (`TooManyRequests`), with Retry-After."""
    await render(Request(scope), TooManyRequests(wait))(scope, receive, send)
