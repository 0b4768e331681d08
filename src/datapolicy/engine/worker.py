"""Export workers: threads that take operations from the queue and run them to an end.

Each thread loops: claim the oldest operation that needs a worker, run it under a lease that a
heartbeat thread renews (recording progress as it goes), then complete it, fail it, or give it
back for a retry with exponential backoff. Errors that no retry can fix (a location that is not
permitted, a user who does not exist, a storage or source error marked `permanent`, such as a
column the database does not have) fail the operation at once.

`datapolicy serve` runs these threads beside the API; `datapolicy worker` runs them alone, so
export capacity scales apart from API capacity. `stop()` ends claiming at once, gives exports in
progress `[engine] shutdown_grace_seconds` to finish, then makes every thread hand back what it
still holds (partial output discarded, lease released, not counted as an attempt), so another
worker takes it over at once instead of after the lease expires. `hand_back()` skips the grace
period (a second SIGINT or SIGTERM).

Fencing: every attempt writes only its own partial package (see targets/base.py), checked
against its manifest before it is published, and publishes only while its lease holds (checked
in the completing transaction). A worker that dies leaves its partial package behind: an idle
thread sweeps (at most once per lease in a process) for partial packages older than the lease
whose operation is not running, on every target that can be listed (`sweep_orphans`). A
worker's death is counted as a worker loss, not as a failure of the export (`[engine]
max_worker_losses` and `max_attempts`, store/queue.py).

Package retention: an idle thread sweeps (at most once per `poll_seconds` in a process) for
published packages older than `[engine] package_retention` (a complete erasure's, which holds
its receipt: `[erasure] receipt_retention`, by default kept), deletes each through its target
and records when and how in the store (docs/security.md, "Package retention").
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from datapolicy import logs, tracing
from datapolicy.auth.keys import erasure_secret
from datapolicy.config import EngineConfig, ErasureConfig, StorageConfig
from datapolicy.engine.control import NO_CONTROL, ExportControl
from datapolicy.engine.directory import User, UserDirectory
from datapolicy.engine.erasure import Masker
from datapolicy.engine.erasure.package import erase_into_package
from datapolicy.engine.exporter import Cancelled, Progress, export
from datapolicy.engine.report import ReportLabels
from datapolicy.engine.retrypolicy import ExportRetryPolicy
from datapolicy.engine.sources.base import Source, SourceError
from datapolicy.engine.targets import (
    StorageError,
    StorageLocationError,
    Target,
    Upload,
    resolve_target,
)
from datapolicy.engine.targets.local import sweep_partials
from datapolicy.engine.targets.spool import sweep as sweep_spool
from datapolicy.errors import ExportError
from datapolicy.metrics import LEASE_EXPIRIES, export_completed, export_ended
from datapolicy.model import Operation, OperationError, OperationType, utc_now
from datapolicy.redact import redact
from datapolicy.store.audit import AuditAction, AuditLog, AuditUnavailable
from datapolicy.store.database import Transaction
from datapolicy.store.queue import ExpiredPackage, Job, JobKind, OperationQueue

logger = logging.getLogger(__name__)
# A package whose deletion failed for a reason that may pass (an outage) is tried again after:
PACKAGE_DELETION_RETRY = timedelta(minutes=5)
# How often a running export's progress is recorded when it rose (at most; the lease is renewed
# every [engine] heartbeat_seconds). Each record is a small write; clients poll about as often.
PROGRESS_SECONDS = 0.5


class PermanentError(ExportError):
    """An export that no retry can fix, failed with `code` (not a source's or storage's)."""

    def __init__(self, code: str, message: str):
        super().__init__(message, permanent=True)
        self.error = OperationError(code, message)


@dataclass(frozen=True)
class ExportContext:
    """What exports read from and may write to, built once from the configuration.
    `erasure`: the `[erasure]` table, None when erasure is off; `erasure_secret_file`: the
    `hash` mask's key (made on first use: auth/keys.py `erasure_secret`)."""

    sources: Sequence[Source]
    directory: UserDirectory | None
    storage: StorageConfig  # where packages may go (local roots include <data-dir>/exports)
    labels: ReportLabels = field(default_factory=ReportLabels)  # for the person's report
    erasure: ErasureConfig | None = None
    erasure_secret_file: Path | None = None

    def user(self, user_id: str) -> User:
        if self.directory is None:
            return User(user_id)
        user = self.directory.get(user_id)  # a SourceError here is transient: retried
        if user is None:
            raise PermanentError(
                "userNotFound", f"The user '{user_id}' does not exist in the user directory."
            )
        return user

    def close(self) -> None:
        """Release the sources' and the directory's connections (when the service stops)."""
        for source in self.sources:
            source.close()
        if self.directory is not None:
            self.directory.close()


class Worker:
    def __init__(
        self,
        queue: OperationQueue,
        context: ExportContext,
        config: EngineConfig,
        clock: Callable[[], datetime] = utc_now,
        control: ExportControl = NO_CONTROL,
        audit: AuditLog | None = None,
    ):
        self.queue = queue
        self.context = context
        self.config = config
        self.retry_policy = ExportRetryPolicy.of(config)
        self.clock = clock
        self.control = control  # a test double's time control and forced failures
        self.audit = audit  # where package.deleted is recorded, if anywhere
        self._next_sweep = 0.0  # time.monotonic() of the next retention sweep
        self._sweep_lock = threading.Lock()
        self._next_orphan_sweep = 0.0  # time.monotonic() of the next sweep for orphans
        self._orphan_lock = threading.Lock()
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stopping = threading.Event()  # no more claims
        self._handing_back = threading.Event()  # exports in progress stop now
        self._threads: list[threading.Thread] = []
        self._running: set[Progress] = set()  # exports in progress, to stop on hand-back
        self._running_lock = threading.Lock()

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.config.lease_seconds)

    # --- running -----------------------------------------------------------------------------

    def start(self) -> None:
        for index in range(self.config.workers):
            thread = threading.Thread(
                target=self._loop,
                args=(f"{self.name}:{index}",),
                name=f"export-{index}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, grace: float | None = None, timeout: float = 30) -> None:
        """Stop claiming; let exports in progress finish for up to `grace` seconds ([engine]
        shutdown_grace_seconds when None), then hand back the rest and wait up to `timeout`
        more for the threads (discarding a partial package and releasing a lease take a moment,
        longer on remote storage). Threads are daemons: one stuck past that does not hold the
        process."""
        self._stopping.set()
        grace = self.config.shutdown_grace_seconds if grace is None else grace
        _join_all(self._threads, time.monotonic() + grace)
        self.hand_back()
        _join_all(self._threads, time.monotonic() + timeout)
        self._threads.clear()

    def ended_threads(self) -> list[str]:
        """The export threads that have ended while the worker runs: none in a live worker
        (each thread's loop survives every error it can catch), so any is a reason to restart
        the process (the liveness probe of `datapolicy worker --metrics-port`). Threads ending
        after `stop()` began are expected and not listed."""
        if self._stopping.is_set():
            return []
        return [thread.name for thread in self._threads if not thread.is_alive()]

    def stop_claiming(self) -> None:
        """Take no more work; exports in progress go on. `stop()` then waits for them."""
        self._stopping.set()

    def hand_back(self) -> None:
        """Stop claiming and make every export in progress stop now and be handed back. Safe to
        call from a signal handler (it only sets events)."""
        self._stopping.set()
        self._handing_back.set()
        with self._running_lock:
            for progress in self._running:
                progress.stop.set()

    def _loop(self, owner: str) -> None:
        while not self._stopping.is_set():
            try:
                worked = self.run_once(owner)
                if not worked:
                    self.expire_packages(owner)
                    self.sweep_orphans()
            except Exception:  # a store outage must not kill the thread
                logger.exception("export worker %s failed to take work", owner)
                worked = False
            if not worked:
                self._stopping.wait(self.config.poll_seconds)

    def run_once(self, owner: str | None = None) -> bool:
        """Claim and finish one job in this thread; False if there was nothing to do."""
        owner = owner or f"{self.name}:once"
        job = self.queue.claim(
            owner,
            self.lease,
            only=self.control.claimable(),
            max_worker_losses=self.config.max_worker_losses,
        )
        if job is None:
            return False
        with logs.operation_context(job.operation.id, job.operation.user_id):
            if job.expired_owner is not None:
                LEASE_EXPIRIES.inc()
                logger.warning(
                    "%s %s taken over: the lease of %s expired",
                    job.operation.operation_type.noun,
                    job.operation.id,
                    job.expired_owner,
                )
            if job.kind is JobKind.CLEANUP:
                self._clean_up(job, owner)
            else:
                with tracing.export_span(job.operation.id):
                    self._export(job, owner)
        return True

    # --- one export ----------------------------------------------------------------------------

    def _export(self, job: Job, owner: str) -> None:
        operation = job.operation
        reached = self.control.reached
        progress = Progress(on_first_write=lambda: reached(operation.id, "write"))
        with self._running_lock:
            self._running.add(progress)
            if self._handing_back.is_set():  # claimed just as the hand-back began
                progress.stop.set()
        heartbeat = _Heartbeat(self, operation.id, owner, progress)
        heartbeat.start()
        upload: Upload | None = None
        try:
            reached(operation.id, "claim")
            forced = self.control.forced_failure(operation.id)
            if forced is not None:
                raise PermanentError(*forced)
            self.control.hold(operation.id, progress.stop)
            began = time.monotonic()
            progress.pacer = self.control.pacer(operation.id, progress.stop)
            user = self.context.user(operation.user_id)
            if operation.operation_type is OperationType.ERASE:
                self._refuse_together(operation)
            reached(operation.id, "begin")
            upload = self._begin(operation)
            receipt = False  # whether the package holds an erasure's receipt
            if operation.operation_type is OperationType.ERASE:
                manifest, receipt = self._erase(operation, owner, user, upload, progress)
            else:
                manifest = export(
                    operation,
                    user,
                    self.context.sources,
                    upload.stream,
                    progress,
                    self.clock,
                    self.context.labels,
                )
            self.control.pace(operation.id, time.monotonic() - began, progress.stop)
            reached(operation.id, "finish")
            upload.finish(manifest)  # checks the package against its manifest
            heartbeat.stop()
            reached(operation.id, "publish")
            if not self.queue.complete(
                operation.id, owner, upload.publish, progress.detail, receipt=receipt
            ):
                upload.discard()
                self._after_stop(operation, owner)
            else:
                logger.info("%s %s complete", operation.operation_type.noun, operation.id)
                export_completed(manifest, time.monotonic() - began)
                self._record(AuditAction.PACKAGE_PUBLISHED, operation)
                if operation.operation_type is OperationType.ERASE:
                    self._record(AuditAction.ERASURE_COMPLETED, operation)
        except Cancelled:
            if upload is not None:
                upload.discard()
            self._after_stop(operation, owner)
        except PermanentError as exc:
            self._discard(upload, operation)
            self.queue.fail(operation.id, owner, exc.error, job.attempt)
            self._discard_partials(operation)
            export_ended("failed")
        except ExportError as exc:  # a source's or storage's
            self._discard(upload, operation)
            if exc.permanent:  # another attempt would be refused the same way
                self.queue.fail(operation.id, owner, _describe(exc), job.attempt)
                self._discard_partials(operation)
                export_ended("failed")
                logger.warning("%s %s failed: %s", operation.operation_type.noun, operation.id, exc)
            else:
                self._retry_or_fail(job, owner, _describe(exc))
        except Exception as exc:  # every other failure is worth another attempt
            self._discard(upload, operation)
            self._retry_or_fail(job, owner, _describe(exc))
        finally:
            heartbeat.stop()
            with self._running_lock:
                self._running.discard(progress)
            self.control.finished(operation.id)

    def _refuse_together(self, operation: Operation) -> None:
        """An erasure never runs beside another operation of the same person (the API refuses
        to start one while the other is unfinished, with 409; this closes the window of two
        starts on two API processes at once): it waits, retried after backoff."""
        others = [
            other
            for other in self.queue.active_for_user(operation.user_id)
            if other.id != operation.id and other.status.value == "running"
        ]
        if others:
            raise ExportError(
                f"another operation of the same user is running ({others[0].id}): the erasure "
                "waits for it"
            )

    def _erase(
        self, operation: Operation, owner: str, user: User, upload: Upload, progress: Progress
    ) -> tuple[dict[str, Any], bool]:
        """Run an erasure into `upload` (engine/erasure/package.py), storing after each
        source commits which sources are done, so that a retry resumes. Returns the package's
        manifest and whether the package holds the receipt (a complete erasure's, not a dry
        run's).

        Before each change takes effect (a source's commit, a file's deletion) the lease is
        renewed in the store, and the attempt stops (Cancelled, that change not made) if it is
        no longer held: a worker that stalled past its lease must not commit what its
        successor will erase again and find gone, which that successor's receipt would then
        not count. Renewed, the lease stays this attempt's for `lease_seconds`, far longer
        than a commit takes. Should the record of a commit still fail (the lease lost in
        between), the log says so, and the next change's renewal stops the attempt.

        A file source is recorded before each file's deletion, in the same write as the lease's
        renewal (`partial`: engine/erasure/filelog.py), as a deleted file is gone for the
        successor, which erases only the files left."""
        if self.context.erasure is None or self.context.erasure_secret_file is None:
            raise PermanentError(
                "erasureNotConfigured",
                "Erasure is not configured ([erasure] in the configuration).",
            )
        state = orjson.loads(self.queue.erasure_state(operation.id) or b"{}")
        committed: dict[str, list[dict[str, Any]]] = state.setdefault("committed", {})
        partial: dict[str, list[dict[str, Any]]] = state.setdefault("partial", {})

        def save(renew: timedelta | None = None) -> bool:
            text = orjson.dumps(state).decode()
            return self.queue.save_erasure_state(operation.id, owner, text, renew=renew)

        def record_partly(source: str, lines: list[dict[str, Any]]) -> None:
            partial[source] = lines
            if not save(renew=self.lease):
                raise Cancelled

        def record(source: str, lines: list[dict[str, Any]]) -> None:
            committed[source] = lines
            partial.pop(source, None)  # its lines are among `lines` now
            saved = save()
            self._record(AuditAction.ERASURE_SOURCE_COMMITTED, operation)
            if not saved:
                logger.error(
                    "erasure %s: source '%s' committed, but the lease was lost before that was "
                    "stored: the attempt that takes over erases it again, and its receipt counts "
                    "none of the rows this commit changed (a file source's files are settled "
                    "from their own record; the audit trail records the commit)",
                    operation.id,
                    source,
                )

        def still_held() -> None:
            if not self.queue.heartbeat(operation.id, owner, self.lease, None):
                raise Cancelled

        dry_run = bool(state.get("dryRun"))
        manifest = erase_into_package(
            operation,
            user,
            self.context.sources,
            upload.stream,
            progress,
            self.clock,
            Masker(erasure_secret(self.context.erasure_secret_file)),
            dry_run=dry_run,
            state=dict(committed),
            committed=record,
            approval={
                k: state[k] for k in ("requestedBy", "approvedBy", "approvedAt") if k in state
            },
            before_commit=still_held,
            partly=record_partly,
            earlier=dict(partial),  # as this attempt found it (`record_partly` replaces entries)
        )
        return manifest, not dry_run

    def _begin(self, operation: Operation) -> Upload:
        if not operation.storage_location:
            raise PermanentError("StorageLocationInvalid", "The operation has no storageLocation.")
        try:
            return resolve_target(operation.storage_location, self.context.storage).begin(
                operation.id
            )
        except StorageLocationError as exc:
            raise PermanentError(exc.code, exc.message) from None

    def _discard(self, upload: Upload | None, operation: Operation) -> None:
        if upload is None:
            return
        try:
            upload.discard()
        except Exception:
            logger.exception("could not discard the partial package of %s", operation.id)

    def _discard_partials(self, operation: Operation) -> None:
        """Once the operation has failed or is being deleted, no attempt can publish: remove
        what every attempt left (a killed worker's partial file, uncommitted Azure blocks,
        multipart uploads)."""
        try:
            resolve_target(operation.storage_location or "", self.context.storage).discard_partial(
                operation.id
            )
        except StorageLocationError:
            pass  # not permitted (any more): nothing of ours can be there
        except Exception as exc:
            logger.warning("could not remove the partial packages of %s: %s", operation.id, exc)

    def _after_stop(self, operation: Operation, owner: str) -> None:
        """The export stopped without publishing: hand it back, or finish its deletion."""
        if self._stopping.is_set():
            self.queue.release(operation.id, owner)
            export_ended("handed_back")
        elif self.queue.deletion_requested(operation.id):
            self._discard_partials(operation)  # what earlier attempts left (Azure blocks)
            self.queue.purge(operation.id, owner)  # nothing was published; nothing is left
            logger.info("%s %s cancelled", operation.operation_type.noun, operation.id)
            export_ended("cancelled")
        else:  # its lease expired and another worker has it now
            logger.warning(
                "%s %s stopped: its lease expired and another worker took it over; this "
                "attempt's partial package was discarded",
                operation.operation_type.noun,
                operation.id,
            )
            export_ended("lease_lost")

    def _retry_or_fail(self, job: Job, owner: str, error: OperationError) -> None:
        """Retry after backoff, or fail once the export has failed `max_attempts` times, as
        `ExportRetryPolicy` says (the attempts whose worker was lost are not its failures: see
        `OperationQueue.claim`)."""
        delay = self.retry_policy.delay_after(job.attempt - job.worker_losses)
        if delay is None:
            self.queue.fail(job.operation.id, owner, error, job.attempt, with_history=True)
            self._discard_partials(job.operation)
            logger.warning(
                "%s %s failed after %d attempts: %s",
                job.operation.operation_type.noun,
                job.operation.id,
                job.attempt,
                error.message,
            )
            export_ended("failed")
            return
        self.queue.retry_later(job.operation.id, owner, delay, error, job.attempt)
        export_ended("retried")
        logger.warning(
            "%s %s attempt %d failed, retrying in %.0fs: %s",
            job.operation.operation_type.noun,
            job.operation.id,
            job.attempt,
            delay.total_seconds(),
            error.message,
        )

    # --- deletion ------------------------------------------------------------------------------

    def _clean_up(self, job: Job, owner: str) -> None:
        """Remove a deleted operation's package (if it was published) and partial output, then
        its row, with what became of the package on the audit trail in the same transaction
        (`_package_entry`). If the entry cannot be written the row stays, with the outcome
        kept for the next attempt."""
        operation = job.operation
        published = job.package_location is not None
        outcome = self.queue.unrecorded_package_deletion(operation.id) if published else None
        if operation.storage_location:
            try:
                target = resolve_target(operation.storage_location, self.context.storage)
                if published and outcome is None:
                    outcome = _delete_package(target, operation.id)
                target.discard_partial(operation.id)
            except StorageLocationError:
                # No longer permitted, or refused for good (an Azure 403): the package stays.
                outcome = outcome or ("refused" if published else None)
            except Exception:
                logger.exception(
                    "could not remove the package of deleted operation %s", operation.id
                )
                self.queue.release(operation.id, owner)
                return
        try:
            self.queue.purge(operation.id, owner, self._package_entry(operation, outcome))
        except AuditUnavailable:
            logger.warning("the deletion of %s cannot be recorded now; trying again", operation.id)
            if outcome is None:
                self.queue.release(operation.id, owner)
            else:
                self.queue.keep_package_deletion(operation.id, owner, outcome, timedelta(0))

    def _package_entry(
        self, operation: Operation, outcome: str | None
    ) -> Callable[[Transaction], None] | None:
        """The audit entry for what became of an operation's package, to append in the
        transaction that records it in the store: `package.deleted` only if it was deleted,
        `package.deletionRefused` if its target refused or cannot delete it, none if there was
        nothing to delete (never published, or already gone)."""
        action = _PACKAGE_ACTIONS.get(outcome or "")
        audit = self.audit
        if audit is None or action is None:
            return None

        def record(transaction: Transaction) -> None:
            audit.record(
                action,
                user_id=operation.user_id,
                operation_id=operation.id,
                request_id=audit.request_of_start(operation.id),
                within=transaction,
            )

        return record

    def _record(self, action: AuditAction, operation: Operation) -> None:
        """An audit entry for what the worker did to an operation's package, carrying the id
        of the request that started it. Never raises: the work is done whether or not the
        entry could be written (a failure is logged)."""
        if self.audit is None:
            return
        try:
            self.audit.record(
                action,
                user_id=operation.user_id,
                operation_id=operation.id,
                request_id=self.audit.request_of_start(operation.id),
            )
        except Exception:
            logger.exception("could not record %s for %s in the audit log", action, operation.id)

    # --- orphans -------------------------------------------------------------------------------

    def sweep_orphans(self) -> int:
        """Remove what attempts whose worker died left behind, once it is older than the lease
        and its operation is not running under a live lease: partial files under the local
        roots, spool files, and unfinished S3 multipart uploads of packages in the configured
        buckets (Azure blocks cannot be listed: see targets/azure.py). At most one sweep per
        lease per process, by an idle thread; returns how many were removed."""
        if not self._orphan_lock.acquire(blocking=False):
            return 0
        try:
            if time.monotonic() < self._next_orphan_sweep:
                return 0
            self._next_orphan_sweep = time.monotonic() + self.config.lease_seconds
            storage, age = self.context.storage, self.config.lease_seconds
            running = self.queue.running
            removed = len(sweep_partials(storage.local.roots, age, running))
            if (
                storage.s3_presigned.spool_dir is not None
                and storage.s3_presigned.spool_dir.is_dir()
            ):
                removed += len(sweep_spool(storage.s3_presigned.spool_dir, age, running))
            for config in storage.s3:
                # boto3 is imported only where S3 is configured (engine/targets/__init__.py)
                from datapolicy.engine.targets.s3 import sweep_uploads

                try:
                    removed += sweep_uploads(config, self.lease, running)
                except Exception as exc:  # an outage, or credentials that may not list
                    logger.warning(
                        "cannot sweep the unfinished uploads of [[storage.s3]] '%s': %s",
                        config.name,
                        exc,
                    )
            if removed:
                logger.info("removed %d partial packages left by lost workers", removed)
            return removed
        finally:
            self._orphan_lock.release()

    # --- package retention ---------------------------------------------------------------------

    def expire_packages(self, owner: str) -> int:
        """Delete the published packages that have outlived `[engine] package_retention` (or,
        those that hold an erasure's receipt, `[erasure] receipt_retention`), at most one sweep
        per `poll_seconds` per process (an idle thread runs it); returns how many packages were
        dealt with."""
        erasure = self.context.erasure
        retentions = {  # whether the packages hold an erasure's receipt: their retention
            False: self.config.package_retention_seconds,
            True: None if erasure is None else erasure.receipt_retention_seconds,
        }
        if all(seconds is None for seconds in retentions.values()):
            return 0
        if not self._sweep_lock.acquire(blocking=False):
            return 0
        try:
            if time.monotonic() < self._next_sweep:
                return 0
            self._next_sweep = time.monotonic() + self.config.poll_seconds
            done = 0
            for receipt, seconds in retentions.items():
                while seconds is not None and not self._stopping.is_set():
                    expired = self.queue.claim_expired_package(
                        owner, self.lease, timedelta(seconds=seconds), receipt=receipt
                    )
                    if expired is None:
                        break
                    self._expire(expired, owner)
                    done += 1
            return done
        finally:
            self._sweep_lock.release()

    def _expire(self, expired: ExpiredPackage, owner: str) -> None:
        """Delete one expired package through its target and record the outcome, in the store
        and on the audit trail together; a failure that another try may fix (an outage, an
        audit trail that cannot be written) is tried again after PACKAGE_DELETION_RETRY."""
        operation = expired.operation
        operation_id = operation.id
        outcome = self.queue.unrecorded_package_deletion(operation_id)
        try:
            if outcome is None:
                target = resolve_target(operation.storage_location or "", self.context.storage)
                outcome = _delete_package(target, operation_id)
        except StorageLocationError as exc:  # no longer permitted, or refused for good
            outcome = "refused"
            logger.warning("cannot delete the expired package of %s: %s", operation_id, exc)
        except Exception as exc:
            logger.warning(
                "cannot delete the expired package of %s now, trying again later: %s",
                operation_id,
                exc,
            )
            self.queue.retry_package_deletion(operation_id, owner, PACKAGE_DELETION_RETRY)
            return
        if outcome == "notDeletable":
            logger.warning(
                "the package of %s outlived its retention but stays at %s: its target "
                "cannot delete it",
                operation_id,
                expired.package_location,
            )
        try:
            recorded = self.queue.package_deleted(
                operation_id, owner, outcome, self._package_entry(operation, outcome)
            )
        except AuditUnavailable:
            logger.warning("the expiry of %s cannot be recorded now; trying again", operation_id)
            self.queue.keep_package_deletion(operation_id, owner, outcome, PACKAGE_DELETION_RETRY)
            return
        if recorded:
            logger.info("package of %s expired: %s", operation_id, outcome)


def _delete_package(target: Target, operation_id: str) -> str:
    """Delete a published package: "deleted", "absent" (there was none), or "notDeletable"
    (the target cannot delete: a presigned PUT URL). A refusal raises StorageLocationError."""
    if not target.can_delete:
        return "notDeletable"
    return "deleted" if target.delete(operation_id) else "absent"


_PACKAGE_ACTIONS = {
    "deleted": AuditAction.PACKAGE_DELETED,
    "refused": AuditAction.PACKAGE_DELETION_REFUSED,
    "notDeletable": AuditAction.PACKAGE_DELETION_REFUSED,
}


class _Heartbeat:
    """Renews a job's lease and records its progress until stopped (through a shutdown's grace
    period too); tells the export to stop when the lease is lost or deletion is requested. The
    worker's hand-back stops the export itself, without waiting for the next beat.

    Progress is recorded every `PROGRESS_SECONDS` when it rose, not only at the lease's
    `heartbeat_seconds` (2 s by default): an export of a few seconds would otherwise show 0%
    until it completed (`_Beats`). What was written by then (the current table or file, the
    records and bytes: `progressDetail`) is recorded in the same write, never in one of its
    own."""

    def __init__(self, worker: Worker, operation_id: str, owner: str, progress: Progress):
        self.worker = worker
        self.operation_id = operation_id
        self.owner = owner
        self.progress = progress
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{operation_id[:8]}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        worker = self.worker
        beats = _Beats(worker.config.heartbeat_seconds)
        while not self._done.wait(beats.tick_seconds):
            if worker._handing_back.is_set():
                self.progress.stop.set()
                return
            percent, detail = self.progress.snapshot()
            write, recorded = beats.tick(percent)
            if not write:
                continue
            try:
                held = worker.queue.heartbeat(
                    self.operation_id, self.owner, worker.lease, recorded, detail
                )
            except Exception:
                logger.exception("heartbeat for %s failed", self.operation_id)
                continue
            if not held:
                self.progress.stop.set()
                return
            beats.written(percent)


class _Beats:
    """When a heartbeat thread writes: at each tick (every `tick_seconds`) the progress if it
    rose since it was last recorded, and in any case the lease once every `heartbeat_seconds`
    (every write renews it). Counted in ticks, so that it needs no clock."""

    def __init__(self, heartbeat_seconds: float):
        self.tick_seconds = min(PROGRESS_SECONDS, heartbeat_seconds)
        self._ticks_per_renewal = max(1, round(heartbeat_seconds / self.tick_seconds))
        self._ticks = 0  # since the last write
        self._recorded = 0.0

    def tick(self, percent: float) -> tuple[bool, float | None]:
        """Whether to write now, and the progress to record (None: only renew the lease)."""
        self._ticks += 1
        rose = percent > self._recorded
        return rose or self._ticks >= self._ticks_per_renewal, percent if rose else None

    def written(self, percent: float) -> None:
        """The write was accepted: its lease renewed and its progress (if any) recorded."""
        self._ticks = 0
        self._recorded = max(self._recorded, percent)


def _join_all(threads: Sequence[threading.Thread], deadline: float) -> None:
    """Wait for every thread until the `time.monotonic()` deadline at the latest."""
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def _describe(exc: Exception) -> OperationError:
    """The operation's error for a failure; its message is shown to API clients, so redacted."""
    if isinstance(exc, SourceError):
        return OperationError("sourceError", redact(str(exc)))
    if isinstance(exc, StorageError):
        return OperationError("storageError", redact(str(exc)))
    logger.exception("unexpected export failure")
    return OperationError("internalError", redact(f"Unexpected {type(exc).__name__}: {exc}")[:500])
