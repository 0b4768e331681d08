"""Opening the operation store as a process starts: the database the settings name, migrated.

`datapolicy serve` and `datapolicy worker` (server.py) open it here, and so do the commands
that work on the store alone, `datapolicy db upgrade` and `datapolicy audit`, without importing
the web layer and the export engine that server.py brings (half a second of CPU at each start).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from datapolicy.errors import MigrationFailed, StoreUnreachable
from datapolicy.store.database import Database
from datapolicy.store.database import open_database as store_database

if TYPE_CHECKING:
    from datapolicy.settings import Settings

# The line naming the store has always been the server's: operators' log filters keep finding it.
logger = logging.getLogger("datapolicy.server")


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
