"""Run the service. `build_app(settings)` is the whole service as one ASGI app, whose lifespan
opens the store, starts the export workers and the audit flush, and at its end stops and closes
them, so that any ASGI server can run it. `serve` runs it on uvicorn until SIGINT or SIGTERM;
`run_worker` runs the export workers alone.

Shutdown under `serve` is a drain, then a graceful stop. On the first signal `/readyz` answers
503 at once and the export threads stop claiming, while every route is still served for
`shutdown_drain_seconds` (`Drain`): long enough for a load balancer polling `/readyz` to stop
routing here, so that no request meets a closed port. Then uvicorn stops accepting connections
and lets requests in flight finish (they are short: exports never run inside a request), and
the lifespan's end follows: exports in progress get
`[engine] shutdown_grace_seconds` to finish before they are handed back (lease released, partial
package discarded) for another worker to take at once. A second signal ends the drain and hands
the exports back without waiting for the grace period. The process exits 0."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
import uvloop
from starlette.routing import Router
from starlette.types import ASGIApp, Receive, Scope, Send

from datapolicy.auth.configure import validator_for
from datapolicy.auth.keys import audit_key
from datapolicy.auth.permissions import SCENARIOS
from datapolicy.auth.tokens import TokenValidator
from datapolicy.config import Config
from datapolicy.demo import prepare_demo
from datapolicy.engine import EXPORTS_DIR, ExportService, Worker, build_context
from datapolicy.engine.control import NO_CONTROL, ExportControl
from datapolicy.engine.sources.base import SourceError
from datapolicy.metrics import watch_store
from datapolicy.scenarios import ConnectionDropper, Scenarios
from datapolicy.scenarios.datadir import DataDirectory
from datapolicy.scenarios.preset import ScenarioPreset, load_preset
from datapolicy.settings import Settings
from datapolicy.store import Database, OperationStore
from datapolicy.store.audit import AuditLog, open_audit_log
from datapolicy.store.queue import OperationQueue
from datapolicy.store.startup import open_database
from datapolicy.tls import TLS_CERTIFICATE_FILE, serving_files
from datapolicy.tracing import configure_tracing
from datapolicy.web.app import create_app
from datapolicy.web.middleware.audit import AuditBuffer, RequestAudit
from datapolicy.web.server_root.worker_port import WorkerPort

logger = logging.getLogger(__name__)

# uvicorn closes a connection idle this long; above the usual load balancers' idle timeouts
# (60 s), so that they, not the service, close idle connections (no request meets a closing one).
KEEP_ALIVE_SECONDS = 75


def effective_config(settings: Settings) -> Config:
    """The configuration, with the demo's directory, sources and erasure rules when --demo is
    given (the file's own `[erasure]`, if it has one, is kept)."""
    if not settings.demo:
        return settings.config
    demo = prepare_demo(settings.data_dir)
    erasure = settings.config.erasure or demo.erasure
    return settings.config.model_copy(
        update={"directory": demo.directory, "sources": demo.sources, "erasure": erasure}
    )


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
    web/server_root/health.py) and calls `then` once `seconds` have passed; meanwhile the event loop
    serves every route as before. `sleep` is the clock (tests pass one they control)."""

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


@dataclass
class RunningService:
    """What `Service`'s lifespan opened: the store, the export threads, the audit trail and
    its flush thread, and the app that serves them."""

    config: Config
    database: Database
    audit_log: AuditLog
    worker: Worker
    audit: RequestAudit
    draining: threading.Event  # set on the first signal under `serve`: /readyz answers 503
    app: ASGIApp

    def close(self) -> None:
        """Stop the export threads (in-progress exports get [engine] shutdown_grace_seconds),
        append the buffered audit entries, and close the store and the sources' connections:
        blocking, so from a thread."""
        try:
            self.worker.stop()
            self.audit.buffer.close()
        finally:
            self.worker.context.close()
            self.audit_log.close()
            self.database.close()


def open_service(settings: Settings, drop_connection: ConnectionDropper | None) -> RunningService:
    """Open the store, start the export threads and the audit flush, and build the app."""
    config = effective_config(settings)
    # A scenarios file that cannot be used fails here, before a key or a store is made.
    preset = None if settings.scenarios_file is None else load_preset(settings.scenarios_file)
    configure_tracing(config.tracing)
    validator = validator_for(config.auth, settings.data_dir)
    with ExitStack() as opened:  # what is open so far is closed again if a later step fails
        database = open_database(settings)
        opened.callback(database.close)
        audit_log = open_audit_log(database, signing_key=audit_key(settings.data_dir))
        opened.callback(audit_log.close)
        running = _start(settings, config, validator, database, audit_log, drop_connection, preset)
        opened.pop_all()
    return running


def _start(
    settings: Settings,
    config: Config,
    validator: TokenValidator,
    database: Database,
    audit_log: AuditLog,
    drop_connection: ConnectionDropper | None,
    preset: ScenarioPreset | None,
) -> RunningService:
    store = OperationStore(database)
    default_location = str((settings.data_dir / EXPORTS_DIR).absolute())
    scenarios = (
        Scenarios(
            DataDirectory(database, settings.data_dir, Path(default_location)),
            drop_connection=drop_connection,
        )
        if settings.scenarios
        else None
    )
    if scenarios is not None and preset is not None:
        preset.apply(scenarios)  # before a worker claims
    worker = start_worker(
        settings,
        database,
        config,
        audit_log,
        NO_CONTROL if scenarios is None else scenarios.control,
    )
    # Read entries are buffered (the hot path); the buffer is flushed at shutdown (`close`).
    audit = RequestAudit(
        audit_log, AuditBuffer(audit_log, flush_seconds=config.audit.flush_seconds)
    )
    exports = ExportService(store, worker.context, default_location)
    if scenarios is not None:
        logger.warning(
            "SCENARIO CONTROLS ARE ON (--scenarios): this is a test double; faults, time "
            "control, reset and restore are open to tokens with %s",
            SCENARIOS,
        )
    draining = threading.Event()
    app = create_app(
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
        cors_origins=settings.cors_origins,
        draining=draining,
        readiness_min_free_bytes=config.server.readiness_min_free_bytes,
    )
    if config.metrics.enabled:
        # operations by status and the queue, read at each scrape
        watch_store(store, config.metrics.store_max_age_seconds)
    return RunningService(config, database, audit_log, worker, audit, draining, app)


class Service:
    """The whole service as one ASGI app, for any ASGI server (`build_app` makes it).

    Its lifespan (Starlette's handling of the ASGI lifespan protocol, over `lifespan`) opens
    the store, starts the export threads and the audit flush, and builds the routed app; at
    shutdown it stops the threads (exports in progress get [engine] shutdown_grace_seconds),
    flushes the audit buffer and closes the store. A request before startup has completed is
    an error: the server must run the lifespan (uvicorn, granian and hypercorn do by default;
    in process, asgi-lifespan's `LifespanManager`).

    `drop_connection`, if the server that runs the app can close a client's connection without
    an answer (the scenario fault `drop`), is how; set it before startup (`serve` does)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.drop_connection: ConnectionDropper | None = None
        self.running: RunningService | None = None
        self._lifespan_protocol = Router(lifespan=self._lifespan_events)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        running = self.running
        if running is not None and scope["type"] != "lifespan":
            await running.app(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan_protocol.lifespan(scope, receive, send)
        else:
            raise RuntimeError("the service has not started: its ASGI lifespan must run first")

    @asynccontextmanager
    async def _lifespan_events(self, _app: object) -> AsyncIterator[None]:
        """`lifespan` as Starlette's Router runs it for the server's lifespan events."""
        async with self.lifespan():
            yield

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[RunningService]:
        """Open the service for the block; close it after, whatever happened."""
        # Startup runs on the event loop before any request, as a server's startup does.
        running = open_service(self.settings, self.drop_connection)
        self.running = running
        try:
            yield running
        finally:
            self.running = None
            await asyncio.to_thread(running.close)
            logger.info("datapolicy stopped")


def build_app(settings: Settings) -> Service:
    """The service's ASGI app for these settings: nothing is opened until its lifespan starts.
    For an ASGI server's factory option (`uvicorn --factory`, `granian --factory`), wrap it in a
    function of no arguments that loads the settings (as cli/options.py `load_settings` does)."""
    return Service(settings)


class _Uvicorn(uvicorn.Server):
    """uvicorn's programmatic server, with the signals left to `serve`: uvicorn's own handlers
    would stop at once on the first signal (no drain) and raise the signal again on the way
    out (an exit status other than 0)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _connection_dropper(server: uvicorn.Server) -> ConnectionDropper:
    """Close the connection from this client address at once, without an answer: found among
    the server's open connections (uvicorn keeps them, with their transports)."""

    def drop(client: tuple[str, int]) -> bool:
        for connection in list(server.server_state.connections):
            if getattr(connection, "client", None) == tuple(client):
                connection.transport.abort()
                return True
        return False

    return drop


def http_server(app: ASGIApp, tls: ssl.SSLContext | None = None) -> uvicorn.Server:
    """uvicorn as `serve` runs it (bench/bare_server.py runs its floor on the same), for
    sockets bound by the caller and signals handled by the caller; https with `tls`."""
    return _Uvicorn(
        uvicorn.Config(
            app,
            ssl_context_factory=None if tls is None else (lambda _config, _default: tls),
            interface="asgi3",
            http="httptools",
            ws="none",
            lifespan="off",  # `serve` enters the lifespan itself: its errors reach the CLI
            log_config=None,  # uvicorn's lines through our handler and format (logs.py)
            log_level="warning",
            access_log=False,  # the access log is ours ([logging] access_log)
            # forwarded headers are ours to trust or not (web/middleware/proxy.py)
            proxy_headers=False,
            server_header=False,
            date_header=False,  # the responses' headers are the app's, as they were before
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
    )


def serve(settings: Settings) -> None:
    """`datapolicy serve`: the service on uvicorn (httptools, uvloop) until SIGINT or SIGTERM,
    then the drain and the graceful stop (see the module's docstring). Binding the port or
    opening the store fails here, before anything is served: OSError, Unavailable."""
    uvloop.run(_serve(settings))


async def _serve(settings: Settings) -> None:
    tls = serving_files(settings)  # a file that cannot be used fails here, before the bind
    context = None if tls is None else tls.context()
    if settings.tls_self_signed:
        logger.warning(
            "serving https with a self-signed certificate: clients must trust %s",
            settings.data_dir / TLS_CERTIFICATE_FILE,
        )
    # Bound here, not by uvicorn (which logs and exits on an error): OSError reaches the CLI.
    listener = socket.create_server(
        (settings.host, settings.port),
        family=socket.AF_INET6 if ":" in settings.host else socket.AF_INET,
        backlog=2048,
    )
    service = build_app(settings)
    server = http_server(service, context)
    service.drop_connection = _connection_dropper(server)
    try:
        async with service.lifespan() as running:
            # After the drain, uvicorn takes no new connections and lets requests in flight
            # finish; then the lifespan's end stops the export threads.
            drain = Drain(settings.drain_seconds, running.draining, _exit_later(server))

            def begin_stopping() -> None:
                # No new exports for a process on its way out: those in progress get the drain
                # and then the grace period (which starts once the requests are done) to finish.
                running.worker.stop_claiming()
                drain.begin()

            def stop_now() -> None:
                drain.end_now()
                server.force_exit = True  # no more waiting for connections to close
                running.worker.hand_back()

            _OnSignal(begin_stopping, stop_now).install(asyncio.get_running_loop())
            # What startup made (modules, the app, compiled statements) lives as long as the
            # process: moved out of the collector's generations, so that its collections,
            # which requests' garbage sets off, no longer walk it again and again.
            gc.freeze()
            logger.info(
                "datapolicy serving on %s://%s:%d/v1.0 (data in %s, %d export workers)",
                "http" if context is None else "https",
                settings.host,
                listener.getsockname()[1],  # the port bound, where --port 0 let the system choose
                settings.data_dir,
                running.config.engine.workers,
            )
            await server.serve(sockets=[listener])
    finally:
        listener.close()


def _exit_later(server: uvicorn.Server) -> Callable[[], None]:
    """What ends the drain: uvicorn's graceful stop (its main loop looks every 0.1 s)."""

    def stop() -> None:
        server.should_exit = True

    return stop


def run_worker(settings: Settings, metrics_address: tuple[str, int] | None = None) -> None:
    """`datapolicy worker`: export workers without the API, until SIGINT or SIGTERM. With
    `metrics_address` (host, port), its export counters are served there for Prometheus
    (`GET /metrics`; the store's gauges come from `datapolicy serve`) and its liveness at
    `GET /healthz` (web/server_root/worker_port.py)."""
    config = effective_config(settings)
    configure_tracing(config.tracing)
    database = open_database(settings)
    port = None if metrics_address is None else WorkerPort(*metrics_address)
    audit_log = open_audit_log(database, signing_key=audit_key(settings.data_dir))
    worker = start_worker(settings, database, config, audit_log)
    if port is not None:
        port.serve(worker.ended_threads)
        logger.info("metrics and /healthz on http://%s:%d/", *metrics_address or ())

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
        worker.context.close()
        audit_log.close()
        database.close()
        logger.info("datapolicy worker stopped")
