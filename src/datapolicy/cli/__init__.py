"""The `datapolicy` command: one module per command (or command group), gathered here."""

from __future__ import annotations

import os
from typing import Any

import click

from datapolicy.cli.audit import audit
from datapolicy.cli.config import config_group
from datapolicy.cli.db import db
from datapolicy.cli.discover import discover
from datapolicy.cli.erase import erase
from datapolicy.cli.export import export
from datapolicy.cli.ops import ops
from datapolicy.cli.scenarios import scenarios
from datapolicy.cli.serve import serve, worker
from datapolicy.cli.token import token
from datapolicy.cli.users import users
from datapolicy.cli.verify import verify
from datapolicy.errors import StartupError, Unavailable


class _Commands(click.Group):
    """The `datapolicy` group. A command that cannot start (errors.StartupError: the
    configuration, a key file, the operation store) ends here, the one place that turns it
    into click's `Error: <message>` on stderr and exit status 1. So does Graph's `Unavailable`,
    the store's outage error, when the store stops answering while a command opens what it needs
    (the audit trail, after migrating)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (StartupError, Unavailable) as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """datapolicy: a self-hosted, Microsoft Graph-compatible dataPolicyOperations service."""
    # Everything datapolicy creates (the data directory, the store and audit files with their
    # -wal/-shm files, packages, the demo's files) holds personal data or secrets: owner-only,
    # whatever umask it was started with (docs/security.md, "Files").
    os.umask(os.umask(0o077) | 0o077)


for _command in (
    serve,
    worker,
    token,
    verify,
    export,
    erase,
    ops,
    users,
    config_group,
    discover,
    db,
    audit,
    scenarios,
):
    main.add_command(_command)
