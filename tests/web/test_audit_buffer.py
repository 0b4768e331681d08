"""The buffer of read entries (web/middleware/audit.py's `AuditBuffer`), on SQLite and PostgreSQL:
it appends what gathers as blocks of at most `max_pending` entries, at once when that many wait,
and the rest when closed, into a chain that verifies."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from datapolicy.store import Database
from datapolicy.store.audit import AuditAction, AuditLog, AuditRecord, open_audit_log
from datapolicy.web.middleware.audit import AuditBuffer

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def log(database: Database) -> Iterator[AuditLog]:
    audit = open_audit_log(database)
    yield audit
    audit.close()


def test_the_buffer_appends_in_batches_and_the_rest_on_close(log: AuditLog):
    buffer = AuditBuffer(log, flush_seconds=60, max_pending=3)
    record = AuditRecord(AuditAction.OPERATION_READ, "reader", START)
    for _ in range(3):  # reaching max_pending wakes the thread at once
        buffer.add(record)
    deadline = datetime.now(UTC) + timedelta(seconds=5)
    while len(log.entries()) < 3 and datetime.now(UTC) < deadline:
        threading.Event().wait(0.01)
    assert len(log.entries()) == 3
    buffer.add(record)
    buffer.close()
    assert len(log.entries()) == 4
    assert log.verify().ok
