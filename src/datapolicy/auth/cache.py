"""Tokens already validated, so that a client polling its operation is not re-verified (a
signature check costs about 90 µs, more than the rest of the read) on every request.

An entry lives until its token's `exp`; revoking a key therefore takes effect for new tokens at
once and for tokens already seen when they expire, as with any cache of a JWT's validity. Only
valid tokens are kept, and at most `max_entries` of them: when full, expired entries go first,
then the oldest. It is used from the event loop only, so it needs no lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from datapolicy.auth.tokens import Principal

DEFAULT_MAX_ENTRIES = 4096


class TokenCache:
    def __init__(
        self, max_entries: int = DEFAULT_MAX_ENTRIES, clock: Callable[[], float] = time.time
    ):
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, Principal] = {}

    def get(self, token: str) -> Principal | None:
        principal = self._entries.get(token)
        if principal is None:
            return None
        if principal.expires_at <= self._clock():
            self._entries.pop(token, None)
            return None
        return principal

    def put(self, token: str, principal: Principal) -> None:
        now = self._clock()
        if principal.expires_at <= now:
            return
        if len(self._entries) >= self._max_entries:
            self._evict(now)
        self._entries[token] = principal

    def _evict(self, now: float) -> None:
        for token in [t for t, p in self._entries.items() if p.expires_at <= now]:
            del self._entries[token]
        # Still full: drop the oldest tenth (dicts keep insertion order).
        excess = len(self._entries) - self._max_entries + max(1, self._max_entries // 10)
        for token in list(self._entries)[: max(0, excess)]:
            del self._entries[token]
