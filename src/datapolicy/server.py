"""Run the service: open the store, start the export workers, serve the API until SIGINT or
SIGTERM, then stop the workers (handing back unfinished exports) and close the store."""

from __future__ import annotations

import asyncio
import logging
import signal

from granian.constants import Interfaces
from granian.log import LogLevels
from granian.server.embed import Server
from sqlalchemy.exc import SQLAlchemyError

from datapolicy.auth.configure import validator_for
from datapolicy.config import Config
from datapolicy.demo import prepare_demo
from datapolicy.engine import EXPORTS_DIR, ExportService, Worker, build_context
from datapolicy.engine.sources.base import SourceError
from datapolicy.errors import Unavailable
from datapolicy.settings import Settings
from datapolicy.store import Database, OperationStore
from datapolicy.store.database import DatabaseURLError
from datapolicy.store.database import open_database as store_database
from datapolicy.store.queue import OperationQueue
from datapolicy.web.app import create_app

logger = logging.getLogger(__name__)


def effective_config(settings: Settings) -> Config:
    """The configuration, with the demo's directory and sources when --demo is given."""
    if not settings.demo:
        return settings.config
    demo = prepare_demo(settings.data_dir)
    return settings.config.model_copy(update={"directory": demo.directory, "sources": demo.sources})


def open_database(settings: Settings) -> Database:
    """The operation store's database (--database, [store] url, or SQLite in the data
    directory), migrated to the current schema. Messages name it without its password."""
    store = settings.config.store
    try:
        database = store_database(
            settings.database_url,
            pool_min_size=store.pool_min_size,
            pool_max_size=store.pool_max_size,
            pool_timeout=store.pool_timeout,
        )
    except DatabaseURLError as exc:
        raise Unavailable(str(exc)) from None
    try:
        database.migrate()
    except SQLAlchemyError as exc:
        database.close()
        reason = str(getattr(exc, "orig", None) or type(exc).__name__).strip().splitlines()
        raise Unavailable(
            f"cannot open the operation store at {database.url}: {reason[0] if reason else ''}"
        ) from None
    logger.info("operation store: %s", database.url)
    return database


def start_worker(settings: Settings, database: Database, config: Config) -> Worker:
    context = build_context(config, settings.data_dir)
    for source in context.sources:
        try:
            source.check()
        except SourceError as exc:  # reported now; exports retry while it persists
            logger.warning("source check failed: %s", exc)
    worker = Worker(OperationQueue(database), context, config.engine)
    worker.start()
    return worker


async def serve(settings: Settings) -> None:
    config = effective_config(settings)
    validator = validator_for(config.auth, settings.data_dir)
    database = open_database(settings)
    store = OperationStore(database)
    worker = start_worker(settings, database, config)
    default_location = str((settings.data_dir / EXPORTS_DIR).absolute())
    exports = ExportService(store, worker.context, default_location)
    # Granian embedded in our own event loop: a Rust HTTP server in front of the ASGI app, in
    # the same process as the export workers in the embedded default.
    server = Server(
        create_app(store, exports, validator),
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        log_level=LogLevels.warning,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.stop)
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
        database.close()
        logger.info("datapolicy stopped")


def run_worker(settings: Settings) -> None:
    """`datapolicy worker`: export workers without the API, until SIGINT or SIGTERM."""
    config = effective_config(settings)
    database = open_database(settings)
    worker = start_worker(settings, database, config)
    stopped = asyncio.Event()

    async def wait() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopped.set)
        logger.info(
            "datapolicy worker running %d export threads (data in %s)",
            config.engine.workers,
            settings.data_dir,
        )
        await stopped.wait()

    try:
        asyncio.run(wait())
    finally:
        worker.stop()
        database.close()
        logger.info("datapolicy worker stopped")
