"""`datapolicy audit`: check the audit trail's hash chain, and read it (docs/security.md)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from datapolicy.cli.options import (
    config_option,
    data_dir_option,
    database_option,
    json_option,
    load_settings,
)
from datapolicy.cli.output import print_records

if TYPE_CHECKING:  # the store loads SQLAlchemy: imported when a subcommand runs
    from datapolicy.store.audit import AuditLog


class _Actions(click.Choice[str]):
    """The audit actions' names (`AuditAction`), read when `audit list` checks `--action` or
    shows its help, not when `datapolicy --help` imports this module (cli/__init__.py)."""

    def __init__(self) -> None:
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        from datapolicy.store.audit import AuditAction

        return tuple(action.value for action in AuditAction)


@click.group()
def audit() -> None:
    """The audit trail: who did what to whose export, hash-chained."""


@contextmanager
def _opened(
    data_dir: Path | None, config_file: Path | None, database: str | None
) -> Iterator[AuditLog]:
    """The audit trail of the store the options name (migrated, as every process does)."""
    from datapolicy.auth.keys import audit_key
    from datapolicy.store.audit import open_audit_log
    from datapolicy.store.startup import open_database

    settings = load_settings(config_file, data_dir=data_dir, database=database)
    key = audit_key(settings.data_dir)  # the checkpoint's (store/audit/chain.py)
    store = open_database(settings)
    try:
        log = open_audit_log(store, signing_key=key)
        try:
            yield log
        finally:
            log.close()
    finally:
        store.close()


@audit.command()
@data_dir_option
@config_option
@database_option
def verify(data_dir: Path | None, config_file: Path | None, database: str | None) -> None:
    """Check every entry's hash and link, the chain's head and its checkpoint, signed with
    the data directory's signing key (so entries deleted from the end are found too). Exit 0
    and "OK, N entries" (with the last hash: keep it elsewhere to detect a rewritten trail), or
    exit 1 naming the first bad entry.

    \b
    Examples:
      datapolicy audit verify --data-dir /var/lib/datapolicy
      datapolicy audit verify --database postgresql://datapolicy@db.internal/datapolicy
    """
    with _opened(data_dir, config_file, database) as log:
        result = log.verify()
    if not result.ok:
        click.echo(
            f"BROKEN at entry {result.broken_at}: {result.problem} "
            f"({result.entries} entries before it are intact)",
            err=True,
        )
        raise SystemExit(1)
    click.echo(f"OK, {result.entries} entries (last hash {result.head_hash})")


def _time(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """An ISO 8601 time; one without a zone is UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            "not an ISO 8601 time (2026-11-29T10:00:00Z)", ctx, param
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@audit.command(name="list")
@data_dir_option
@config_option
@database_option
@click.option("--user", "user_id", help="Entries about this user id.")
@click.option("--subject", help="Entries by this caller (the token's subject).")
@click.option("--action", type=_Actions(), help="This action.")
@click.option("--operation", "operation_id", help="Entries about this dataPolicyOperation id.")
@click.option("--since", callback=_time, help="At or after this time (ISO 8601; UTC if no zone).")
@click.option("--until", callback=_time, help="Before this time (ISO 8601; UTC if no zone).")
@click.option(
    "--limit",
    type=click.IntRange(1),
    default=100,
    show_default=True,
    help="The newest this many matching entries.",
)
@json_option
def list_entries(
    data_dir: Path | None,
    config_file: Path | None,
    database: str | None,
    user_id: str | None,
    subject: str | None,
    action: str | None,
    operation_id: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    as_json: bool,
) -> None:
    """Show audit entries, oldest first, filtered.

    \b
    Examples:
      datapolicy audit list --user 48d31887-5fad-4d73-a9f5-3c356e68a038
      datapolicy audit list --action operation.deleted --since 2026-11-01
      datapolicy audit list --operation 0b1c... --json | jq '.[].action'
    """
    from datapolicy.store.audit import AuditAction, AuditFilter

    filters = AuditFilter(
        user_id=user_id,
        subject=subject,
        action=AuditAction(action) if action else None,
        operation_id=operation_id,
        since=since,
        until=until,
        limit=limit,
    )
    with _opened(data_dir, config_file, database) as log:
        entries = log.entries(filters)
    columns = ("sequence", "at", "action", "subject", "userId", "operationId", "client")
    print_records([entry.as_json() for entry in entries], columns, as_json)
