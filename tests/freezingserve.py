"""`datapolicy serve` that freezes itself inside an audit append, for tests that need a process
stopped while it holds the audit trail's head (tests/test_frozen_appender.py). Run as
`python tests/freezingserve.py serve ...` with DATAPOLICY_FREEZE_USER set: the first append of
an entry about that user takes the head's lock (as every append does) and then stops the whole
process (SIGSTOP to itself, as a VM pause or a long garbage collection would) before it writes
anything. The test resumes it with SIGCONT; the append then goes on as it would have.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Sequence

from datapolicy.cli import main
from datapolicy.store.audit import AuditEntry, AuditLog, AuditRecord
from datapolicy.store.database import Transaction

FREEZE_USER = os.environ["DATAPOLICY_FREEZE_USER"]
_append = AuditLog._append
_once = threading.Lock()


def append(
    self: AuditLog, transaction: Transaction, records: Sequence[AuditRecord]
) -> list[AuditEntry]:
    if any(record.user_id == FREEZE_USER for record in records) and _once.acquire(blocking=False):
        self._locked_head(transaction)  # what the append below takes first: now it is held
        os.kill(os.getpid(), signal.SIGSTOP)
    return _append(self, transaction, records)


AuditLog._append = append  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
