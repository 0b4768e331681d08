"""The validated-token cache: an entry lives until its token expires, and the cache stays
within its size, dropping expired entries first and then the oldest."""

from __future__ import annotations

from datapolicy.auth.cache import TokenCache
from datapolicy.auth.tokens import Principal


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def principal(expires_at: float) -> Principal:
    return Principal(subject="s", app_id=None, permissions=frozenset(), expires_at=expires_at)


def test_an_entry_lives_until_the_token_expires():
    clock = Clock()
    cache = TokenCache(clock=clock)
    cache.put("t", principal(1010))
    assert cache.get("t") == principal(1010)
    clock.now = 1010
    assert cache.get("t") is None
    cache.put("expired", principal(1000))
    assert cache.get("expired") is None


def test_a_full_cache_drops_expired_entries_then_the_oldest():
    clock = Clock()
    cache = TokenCache(max_entries=10, clock=clock)
    for number in range(10):
        cache.put(f"t{number}", principal(1005 if number % 2 else 2000))
    clock.now = 1006
    cache.put("new", principal(2000))  # the five expired ones go; nothing else has to
    assert [cache.get(f"t{n}") is not None for n in range(10)] == [True, False] * 5
    for number in range(10, 15):
        cache.put(f"t{number}", principal(2000))
    # Full of valid entries: the oldest tenth (one) goes to make room.
    assert cache.get("t0") is None
    assert cache.get("t2") is not None
    assert cache.get("t14") is not None
