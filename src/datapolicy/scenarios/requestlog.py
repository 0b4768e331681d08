"""The request log: what clients sent, so that a test can assert on it. A bounded ring buffer
(the newest `capacity` requests), held in memory; `Authorization` values are redacted."""

from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass

REDACTED_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
CAPACITY = 1000


@dataclass
class LoggedRequest:
    sequence: int
    time: str  # ISO 8601, UTC
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body_size: int = 0
    status: int | None = None  # None: no response was sent (a dropped connection)
    fault: str | None = None  # the kind of fault injected, if any
    duration_ms: float | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "sequence": self.sequence,
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "bodySize": self.body_size,
            "status": self.status,
            "fault": self.fault,
            "durationMs": self.duration_ms,
        }


def redacted(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Request headers by lower-case name (repeats joined with ', '), secrets replaced."""
    result: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        value = "[redacted]" if name in REDACTED_HEADERS else raw_value.decode("latin-1")
        result[name] = f"{result[name]}, {value}" if name in result else value
    return result


class RequestLog:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self._lock = threading.Lock()
        self._entries: deque[LoggedRequest] = deque(maxlen=capacity)
        self._sequence = itertools.count(1)

    def next_sequence(self) -> int:
        return next(self._sequence)

    def add(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._entries.append(entry)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def find(
        self,
        method: str | None = None,
        path_prefix: str | None = None,
        since: int = 0,
    ) -> list[LoggedRequest]:
        """Logged requests, oldest first, by method, by path prefix, and after the sequence
        number `since`."""
        with self._lock:
            entries = list(self._entries)
        return [
            entry
            for entry in entries
            if entry.sequence > since
            and (method is None or entry.method == method.upper())
            and (path_prefix is None or entry.path.startswith(path_prefix))
        ]
