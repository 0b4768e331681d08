"""When a failed export is tried again: the export-level retry policy, in one place.

An attempt that fails for a reason another attempt may not meet (a source or the storage out
for longer than their own request retries last, a package that does not verify) is handed back
to the queue with a time before which no worker claims it (`OperationQueue.retry_later`); once
the export itself has failed `[engine] max_attempts` times it is failed for good. Attempts whose
worker was lost are not the export's failures and are not counted here (`max_worker_losses`,
store/queue.py). Errors no retry can fix fail the operation at once and never get here.

- Attempts: `max_attempts` failures in all.
- Delays: `retry_backoff_seconds` before the second attempt, doubling before each one after
  (5, 10, 20 s... by default), with no cap: `max_attempts` bounds them.
- Jitter: none. A retried export waits in the queue, not in a client: when many exports fail
  together (one storage outage) and come due at the same moment, workers still claim them one
  at a time, so no more of them run at once than there are export threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from datapolicy.config import EngineConfig


@dataclass(frozen=True, slots=True)
class ExportRetryPolicy:
    """`max_attempts` failures of an export at most; before each retry a wait of
    `first_delay_seconds`, doubled for every failure before the last."""

    max_attempts: int
    first_delay_seconds: float

    @classmethod
    def of(cls, config: EngineConfig) -> ExportRetryPolicy:
        """The policy `[engine]` configures."""
        return cls(config.max_attempts, config.retry_backoff_seconds)

    def delay_after(self, failures: int) -> timedelta | None:
        """How long to wait before the next attempt of an export that has failed `failures`
        times (1 or more), or None when it has failed `max_attempts` times: no more attempts."""
        if failures >= self.max_attempts:
            return None
        return timedelta(seconds=self.first_delay_seconds * 2 ** (failures - 1))
