"""Run the service: open the store, build the app, serve it until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

from granian.constants import Interfaces
from granian.log import LogLevels
from granian.server.embed import Server

from datapolicy.demo import seed_demo_operations
from datapolicy.settings import Settings
from datapolicy.store import Database, OperationStore
from datapolicy.web.app import create_app

logger = logging.getLogger(__name__)


def open_store(settings: Settings) -> OperationStore:
    """The operation store in the data directory, migrated to the current schema."""
    database = Database(settings.database_path)
    database.migrate()
    return OperationStore(database)


async def serve(settings: Settings) -> None:
    store = open_store(settings)
    if settings.demo:
        created = seed_demo_operations(store)
        if created:
            logger.info("created %d demo operations", created)
    # Granian embedded in our own event loop: a Rust HTTP server in front of the ASGI app, one
    # process, so that later the export workers can share the loop and the store.
    server = Server(
        create_app(store),
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        log_level=LogLevels.warning,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.stop)
    logger.info(
        "datapolicy serving on http://%s:%d/v1.0 (data in %s)",
        settings.host,
        settings.port,
        settings.data_dir,
    )
    try:
        await server.serve()
    finally:
        store.database.close()
        logger.info("datapolicy stopped")
