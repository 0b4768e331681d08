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


def _common_options(command):  # type: ignore[no-untyped-def]
    """Options that `serve` and `worker` share."""
    for option in reversed(
        [
            click.option(
                "--data-dir",
                envvar="DATAPOLICY_DATA_DIR",
                type=click.Path(path_type=Path),
                help=f"Where the database, keys and local packages live.  "
                f"[default: ./{DEFAULT_DATA_DIR}]",
            ),
            click.option(
                "--config",
                "config_file",
                envvar="DATAPOLICY_CONFIG",
                type=click.Path(path_type=Path, dir_okay=False),
                help="A TOML configuration file; options and environment variables override it.",
            ),
            click.option(
                "--demo/--no-demo",
                envvar="DATAPOLICY_DEMO",
                default=None,
                help="Export from the bundled demo shop (users, orders, messages, files).",
            ),
            click.option(
                "--workers",
                envvar="DATAPOLICY_WORKERS",
                type=click.IntRange(0, 64),
                help="Export threads in this process (0: none).  [default: 2]",
            ),
        ]
    ):
        command = option(command)
    return command


def _settings(config_file: Path | None, **overrides: object) -> Settings:
    settings = Settings()
    if config_file is not None:
        try:
            settings = settings.with_file(config_file)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
    settings = settings.with_overrides(**overrides)  # type: ignore[arg-type]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return settings


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
@_common_options
def serve(
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    config_file: Path | None,
    demo: bool | None,
    workers: int | None,
) -> None:
    """Start the HTTP service (API root /v1.0) with export workers in the same process.

    \b
    Examples:
      datapolicy serve --demo
      datapolicy serve --host 0.0.0.0 --port 9000 --data-dir /var/lib/datapolicy
      datapolicy serve --config datapolicy.toml --workers 0   # API only
      DATAPOLICY_PORT=9000 datapolicy serve --config datapolicy.toml
    """
    settings = _settings(
        config_file, host=host, port=port, data_dir=data_dir, demo=demo, workers=workers
    )
    from datapolicy.server import serve as run  # imported late: `--help` stays fast

    try:
        asyncio.run(run(settings))
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        pass
    except OSError as exc:
        raise click.ClickException(
            f"cannot serve on {settings.host}:{settings.port}: {exc}"
        ) from None


@main.command()
@_common_options
def worker(
    data_dir: Path | None, config_file: Path | None, demo: bool | None, workers: int | None
) -> None:
    """Run export workers without the API, on the same data directory (or database).

    \b
    Examples:
      datapolicy worker --config datapolicy.toml --workers 4
      datapolicy serve --workers 0 & datapolicy worker   # API and exports apart
    """
    settings = _settings(config_file, data_dir=data_dir, demo=demo, workers=workers)
    from datapolicy.server import run_worker

    run_worker(settings)


@main.command()
@click.argument("package", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def verify(package: Path) -> None:
    """Check an export package against its manifest (sizes, SHA-256 checksums, record counts).

    \b
    Example:
      datapolicy verify datapolicy-data/exports/0aeb517a-0cf7-4ba0-80b9-65a0a9a74c66.zip
    """
    from datapolicy.engine.verify import verify_package

    problems = verify_package(package)
    for problem in problems:
        click.echo(f"{package}: {problem}", err=True)
    if problems:
        raise SystemExit(1)
    click.echo(f"{package}: OK")
