"""Run the service: open the store, start the export workers, serve the API until SIGINT or
SIGTERM, then stop the workers and close the store.

Shutdown is a drain, then a graceful stop. On the first signal `/readyz` answers 503 at once and
the export threads stop claiming, while every route is still served for `shutdown_drain_seconds`
(`Drain`): long enough for a load balancer polling `/readyz` to stop routing here, so that no
request meets a closed port. Then granian stops accepting connections and lets requests in
flight finish (they are short: exports never run inside a request), and exports in progress get
`[engine] shutdown_grace_seconds` to finish before they are handed back (lease released, partial
package discarded) for another worker to take at once. A second signal ends the drain and hands
the exports back without waiting for the grace period. The process exits 0."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

from granian.constants import Interfaces
from granian.log import LogLevels
from granian.server.embed import Server
from prometheus_client import start_http_server
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from datapolicy.auth.configure import validator_for
from datapolicy.auth.keys import audit_key
from datapolicy.auth.permissions import SCENARIOS
from datapolicy.config import Config
from datapolicy.demo import prepare_demo
from datapolicy.engine import EXPORTS_DIR, ExportService, Worker, build_context
from datapolicy.engine.control import NO_CONTROL, ExportControl
from datapolicy.engine.sources.base import SourceError
from datapolicy.errors import MigrationFailed, StoreUnreachable
from datapolicy.logs import GRANIAN_LOGGING
from datapolicy.metrics import watch_store
from datapolicy.scenarios import Scenarios
from datapolicy.scenarios.datadir import DataDirectory
from datapolicy.settings import Settings
from datapolicy.store import Database, OperationStore
from datapolicy.store.audit import AuditLog, open_audit_log
from datapolicy.store.database import open_database as store_database
from datapolicy.store.queue import OperationQueue
from datapolicy.tracing import configure_tracing
from datapolicy.web.app import create_app
from datapolicy.web.audit import AuditBuffer, RequestAudit

logger = logging.getLogger(__name__)


def effective_config(settings: Settings) -> Config:
    """The configuration, with the demo's directory and sources when --demo is given."""
    if not settings.demo:
        return settings.config
    demo = prepare_demo(settings.data_dir)
    return settings.config.model_copy(update={"directory": demo.directory, "sources": demo.sources})


def open_database(settings: Settings) -> Database:
    """The operation store's database (--database, [store] url, or SQLite in the data
    directory), migrated to the current schema; a StartupError if it cannot be. Messages name
    it without its password."""
    store = settings.config.store
    database = store_database(  # DatabaseURLError for a URL it cannot use
        settings.database_url,
        pool_min_size=store.pool_min_size,
        pool_max_size=store.pool_max_size,
        pool_timeout=store.pool_timeout,
        timeouts=store.timeouts(),
    )
    try:
        database.migrate()
    except SQLAlchemyError as exc:
        database.close()
        reason = str(getattr(exc, "orig", None) or type(exc).__name__).strip().splitlines()
        # PEP 249's OperationalError and InterfaceError: the database's operation (cannot
        # connect, connection lost), not the statements the migration runs.
        failure = (
            StoreUnreachable
            if isinstance(exc, OperationalError | InterfaceError)
            else MigrationFailed
        )
        raise failure(
            f"cannot open the operation store at {database.url}: {reason[0] if reason else ''}"
        ) from None
    logger.info("operation store: %s", database.url)
    return database


def start_worker(
    settings: Settings,
    database: Database,
    config: Config,
    audit: AuditLog,
    control: ExportControl = NO_CONTROL,
) -> Worker:
    context = build_context(config, settings.data_dir)
    for source in context.sources:
        try:
            source.check()
        except SourceError as exc:  # reported now; exports retry while it persists
            logger.warning("source check failed: %s", exc)
    worker = Worker(OperationQueue(database), context, config.engine, control=control, audit=audit)
    worker.start()
    return worker


class _OnSignal:
    """The SIGINT/SIGTERM handler: the first signal calls `first` (begin a graceful stop),
    every later one `again` (hurry it)."""

    def __init__(self, first: Callable[[], None], again: Callable[[], None]):
        self.first = first
        self.again = again
        self.received = 0

    def __call__(self) -> None:
        self.received += 1
        if self.received == 1:
            logger.info("stopping: finishing requests and exports in progress")
            self.first()
        else:
            logger.info("stopping now: handing back exports in progress")
            self.again()

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self)


class Drain:
    """The drain before the listener closes: `begin` sets `draining` (so `/readyz` answers 503,
    web/health.py) and calls `then` once `seconds` have passed; meanwhile the event loop serves
    every route as before. `sleep` is the clock (tests pass one they control)."""

    def __init__(
        self,
        seconds: float,
        draining: threading.Event,
        then: Callable[[], None],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.seconds = seconds
        self.draining = draining
        self.then = then
        self.sleep = sleep
        self._task: asyncio.Task[None] | None = None
        self._ended = False

    def begin(self) -> None:
        """Start draining; from the event loop (a signal handler installed on it)."""
        self.draining.set()
        if self.seconds <= 0:
            self.end_now()
            return
        logger.info("draining for %gs: /readyz answers 503, every route still served", self.seconds)
        self._task = asyncio.get_running_loop().create_task(self._wait())

    def end_now(self) -> None:
        """Skip what is left of the drain (a second signal): `then` at once, and only once."""
        if self._task is not None:
            self._task.cancel()
        self._end()

    async def _wait(self) -> None:
        await self.sleep(self.seconds)
        self._end()

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self.then()


async def serve(settings: Settings) -> None:
    config = effective_config(settings)
    configure_tracing(config.tracing)
    validator = validator_for(config.auth, settings.data_dir)
    database = open_database(settings)
    audit_log = open_audit_log(database, signing_key=audit_key(settings.data_dir))
    store = OperationStore(database)
    default_location = str((settings.data_dir / EXPORTS_DIR).absolute())
    scenarios = (
        Scenarios(DataDirectory(database, settings.data_dir, Path(default_location)))
        if settings.scenarios
        else None
    )
    worker = start_worker(
        settings,
        database,
        config,
        audit_log,
        NO_CONTROL if scenarios is None else scenarios.control,
    )
    # Read entries are buffered (the hot path); the buffer is flushed at shutdown, below.
    buffer = AuditBuffer(audit_log, flush_seconds=config.audit.flush_seconds)
    audit = RequestAudit(audit_log, buffer)
    exports = ExportService(store, worker.context, default_location)
    if scenarios is not None:
        logger.warning(
            "SCENARIO CONTROLS ARE ON (--scenarios): this is a test double; faults, time "
            "control, reset and restore are open to tokens with %s",
            SCENARIOS,
        )
    draining = threading.Event()  # set on the first signal: /readyz answers 503
    # Granian embedded in our own event loop: a Rust HTTP server in front of the ASGI app, in
    # the same process as the export workers in the embedded default.
    server = Server(
        create_app(
            store,
            exports,
            validator,
            config.limits,
            audit=audit,
            metrics=config.metrics,
            access_log=config.logging.access_log,
            scenarios=scenarios,
            profile=settings.profile,
            trusted_proxies=[*config.server.trusted_proxies, *config.audit.trusted_proxies],
            draining=draining,
            readiness_min_free_bytes=config.server.readiness_min_free_bytes,
        ),
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        log_level=LogLevels.warning,
        log_dictconfig=GRANIAN_LOGGING,  # granian's lines through our handler and format
    )
    if config.metrics.enabled:
        watch_store(
            store, config.metrics.store_max_age_seconds
        )  # operations by status and the queue, read at each scrape

    # After the drain, granian takes no new connections and lets requests in flight finish.
    drain = Drain(settings.drain_seconds, draining, server.stop)

    def begin_stopping() -> None:
        # No new exports for a process on its way out: those in progress get the drain and
        # then the grace period (which starts once the requests are done) to finish.
        worker.stop_claiming()
        drain.begin()

    def stop_now() -> None:
        drain.end_now()
        worker.hand_back()

    _OnSignal(begin_stopping, stop_now).install(asyncio.get_running_loop())
    logger.info(
        "datapolicy serving on http://%s:%d/v1.0 (data in %s, %d export workers)",
        settings.host,
        settings.port,
        settings.data_dir,
        config.engine.workers,
    )
    try:
        await server.serve()
    finally:
        await asyncio.to_thread(worker.stop)
        await asyncio.to_thread(audit.buffer.close)
        audit_log.close()
        database.close()
        logger.info("datapolicy stopped")


def run_worker(settings: Settings, metrics_address: tuple[str, int] | None = None) -> None:
    """`datapolicy worker`: export workers without the API, until SIGINT or SIGTERM. With
    `metrics_address` (host, port), its export counters are served there for Prometheus
    (`GET /metrics`; the store's gauges come from `datapolicy serve`)."""
    config = effective_config(settings)
    configure_tracing(config.tracing)
    database = open_database(settings)
    if metrics_address is not None:
        host, port = metrics_address
        start_http_server(port, addr=host)
        logger.info("metrics on http://%s:%d/metrics", host, port)
    audit_log = open_audit_log(database, signing_key=audit_key(settings.data_dir))
    worker = start_worker(settings, database, config, audit_log)

    async def run() -> None:
        """Until a signal, then the graceful stop, with the handlers still installed so that a
        second signal can hurry it."""
        stopped = asyncio.Event()
        _OnSignal(stopped.set, worker.hand_back).install(asyncio.get_running_loop())
        logger.info(
            "datapolicy worker running %d export threads (data in %s)",
            config.engine.workers,
            settings.data_dir,
        )
        await stopped.wait()
        await asyncio.to_thread(worker.stop)

    try:
        asyncio.run(run())
    finally:
        worker.stop(grace=0)  # a no-op after a graceful stop; after a failure, at once
        audit_log.close()
        database.close()
        logger.info("datapolicy worker stopped")
