"""The `datapolicy` command: one module per command (or command group), gathered here.

Each command's module is imported only when that command runs, or when `--help` lists it
(click's lazy-group pattern): a client command (`export`, `ops`, `users`, `token`, `verify`)
never pays for SQLAlchemy, the engine or the audit store, which `serve` and `config check`
need. The command modules keep their own top-level imports light for the same reason: `--help`
imports them all (bench/cli_startup.py measures both)."""

from __future__ import annotations

import importlib
import os
from typing import Any

import click

from datapolicy.errors import StartupError, Unavailable

# Each command's name, and where it is defined (`module:attribute`), in `--help`'s order.
COMMANDS = {
    "serve": "datapolicy.cli.serve:serve",
    "worker": "datapolicy.cli.serve:worker",
    "token": "datapolicy.cli.token:token",
    "verify": "datapolicy.cli.verify:verify",
    "export": "datapolicy.cli.export:export",
    "erase": "datapolicy.cli.erase:erase",
    "ops": "datapolicy.cli.ops:ops",
    "users": "datapolicy.cli.users:users",
    "config": "datapolicy.cli.config:config_group",
    "discover": "datapolicy.cli.discover:discover",
    "db": "datapolicy.cli.db:db",
    "audit": "datapolicy.cli.audit:audit",
    "scenarios": "datapolicy.cli.scenarios:scenarios",
}


class _Commands(click.Group):
    """The `datapolicy` group: its commands are loaded by name from `COMMANDS` when needed.

    A command that cannot start (errors.StartupError: the configuration, a key file, the
    operation store) ends here, the one place that turns it into click's `Error: <message>` on
    stderr and exit status 1. So does Graph's `Unavailable`, the store's outage error, when the
    store stops answering while a command opens what it needs (the audit trail, after
    migrating)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = COMMANDS.get(cmd_name)
        if where is None:
            return None
        module, attribute = where.split(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command), where
        return command

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
