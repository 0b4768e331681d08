"""`datapolicy db`: the operation store's schema (Alembic migrations).

Every process migrates the store when it opens it; `db upgrade` does it alone, so a deployment
can migrate once before it starts (or rolls) its API and worker processes, and `db current`
says where the schema is without changing it.
"""

from __future__ import annotations

from pathlib import Path

import click

from datapolicy.cli.options import (
    config_option,
    data_dir_option,
    database_option,
    json_option,
    load_settings,
)
from datapolicy.cli.output import print_json


@click.group()
def db() -> None:
    """The operation store's schema: migrate it, or see its revision."""


@db.command()
@data_dir_option
@config_option
@database_option
def upgrade(data_dir: Path | None, config_file: Path | None, database: str | None) -> None:
    """Migrate the operation store to the newest schema (a no-op when it is there already).

    \b
    Examples:
      datapolicy db upgrade --data-dir /var/lib/datapolicy
      datapolicy db upgrade --database postgresql://datapolicy@db.internal/datapolicy
    """
    from datapolicy.store.database import head_revision
    from datapolicy.store.startup import open_database  # migrates, as every process does

    settings = load_settings(config_file, data_dir=data_dir, database=database)
    store = open_database(settings)
    try:
        click.echo(f"{store.url}: at revision {head_revision()} (the newest)")
    finally:
        store.close()


@db.command()
@data_dir_option
@config_option
@database_option
@json_option
def current(
    data_dir: Path | None, config_file: Path | None, database: str | None, as_json: bool
) -> None:
    """Show the operation store's schema revision and the newest one, changing nothing.

    \b
    Examples:
      datapolicy db current
      datapolicy db current --json | jq .upToDate
    """
    from sqlalchemy.exc import SQLAlchemyError

    from datapolicy.store.database import head_revision, open_database

    settings = load_settings(config_file, data_dir=data_dir, database=database)
    store = open_database(settings.database_url)  # the URL was checked by --database or config
    try:
        revision = store.revision()
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or type(exc).__name__).strip().splitlines()
        raise click.ClickException(
            f"cannot read the operation store at {store.url}: {reason[0] if reason else ''}"
        ) from None
    finally:
        store.close()
    head = head_revision()
    if as_json:
        print_json(
            {"store": store.url, "revision": revision, "head": head, "upToDate": revision == head}
        )
    elif revision == head:
        click.echo(f"{store.url}: at revision {revision} (the newest)")
    else:
        click.echo(
            f"{store.url}: at revision {revision or 'none (no schema yet)'}; the newest is "
            f"{head}: run `datapolicy db upgrade`"
        )
