"""The `datapolicy` command."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import click

from datapolicy.config import ConfigError
from datapolicy.settings import DEFAULT_DATA_DIR, Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """datapolicy: a self-hosted, Microsoft Graph-compatible dataPolicyOperations service."""


@main.command()
@click.option(
    "--host", envvar="DATAPOLICY_HOST", help="Address to listen on.  [default: 127.0.0.1]"
)
@click.option(
    "--port",
    envvar="DATAPOLICY_PORT",
    type=click.IntRange(1, 65535),
    help="Port to listen on.  [default: 8080]",
)
@click.option(
    "--data-dir",
    envvar="DATAPOLICY_DATA_DIR",
    type=click.Path(path_type=Path),
    help=f"Where the database (and later keys and packages) live.  [default: ./{DEFAULT_DATA_DIR}]",
)
@click.option(
    "--config",
    "config_file",
    envvar="DATAPOLICY_CONFIG",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A TOML configuration file; options and environment variables override it.",
)
@click.option(
    "--demo/--no-demo",
    envvar="DATAPOLICY_DEMO",
    default=None,
    help="Create sample operations in an empty store.",
)
def serve(
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    config_file: Path | None,
    demo: bool | None,
) -> None:
    """Start the HTTP service (API root /v1.0).

    \b
    Examples:
      datapolicy serve --demo
      datapolicy serve --host 0.0.0.0 --port 9000 --data-dir /var/lib/datapolicy
      DATAPOLICY_PORT=9000 datapolicy serve --config datapolicy.toml
    """
    settings = Settings()
    if config_file is not None:
        try:
            settings = settings.with_file(config_file)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
    settings = settings.with_overrides(host=host, port=port, data_dir=data_dir, demo=demo)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from datapolicy.server import serve as run  # imported late: `--help` stays fast

    try:
        asyncio.run(run(settings))
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        pass
    except OSError as exc:
        raise click.ClickException(
            f"cannot serve on {settings.host}:{settings.port}: {exc}"
        ) from None
