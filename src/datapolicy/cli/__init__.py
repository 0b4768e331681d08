"""The `datapolicy` command: one module per command (or command group), gathered here."""

from __future__ import annotations

import click

from datapolicy.cli.serve import serve, worker
from datapolicy.cli.token import token
from datapolicy.cli.verify import verify


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """datapolicy: a self-hosted, Microsoft Graph-compatible dataPolicyOperations service."""


for _command in (serve, worker, token, verify):
    main.add_command(_command)
