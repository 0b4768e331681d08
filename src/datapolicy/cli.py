"""The `datapolicy` command."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any, ClassVar

import click

from datapolicy.auth.permissions import PERMISSIONS
from datapolicy.config import ConfigError
from datapolicy.errors import Unavailable
from datapolicy.settings import DEFAULT_DATA_DIR, Settings

MAX_TOKEN_LIFETIME_S = 30 * 86400


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """datapolicy: a self-hosted, Microsoft Graph-compatible dataPolicyOperations service."""


_data_dir_option = click.option(
    "--data-dir",
    envvar="DATAPOLICY_DATA_DIR",
    type=click.Path(path_type=Path),
    help=f"Where the database, keys and local packages live.  [default: ./{DEFAULT_DATA_DIR}]",
)
_config_option = click.option(
    "--config",
    "config_file",
    envvar="DATAPOLICY_CONFIG",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A TOML configuration file; options and environment variables override it.",
)


def _database_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Checked here, so a bad URL is a usage error; the message never repeats the URL (it may
    hold a password)."""
    if value is None:
        return None
    from datapolicy.store.database import DatabaseURLError, parse_url

    try:
        parse_url(value)
    except DatabaseURLError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None
    return value


def _common_options(command):  # type: ignore[no-untyped-def]
    """Options that `serve` and `worker` share."""
    for option in reversed(
        [
            _data_dir_option,
            _config_option,
            click.option(
                "--database",
                envvar="DATAPOLICY_DATABASE",
                callback=_database_url,
                help="The operation store: sqlite:///FILE or postgresql://USER:PASSWORD@HOST/DB "
                "(overrides [store] url).  [default: SQLite in the data directory]",
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
    database: str | None,
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
      datapolicy serve --database postgresql://datapolicy@db.internal/datapolicy
    """
    settings = _settings(
        config_file,
        host=host,
        port=port,
        data_dir=data_dir,
        database=database,
        demo=demo,
        workers=workers,
    )
    from datapolicy.server import serve as run  # imported late: `--help` stays fast

    try:
        asyncio.run(run(settings))
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        pass
    except Unavailable as exc:  # the keys to check tokens against, or the operation store
        raise click.ClickException(exc.message) from None
    except OSError as exc:
        raise click.ClickException(
            f"cannot serve on {settings.host}:{settings.port}: {exc}"
        ) from None


@main.command()
@_common_options
def worker(
    data_dir: Path | None,
    config_file: Path | None,
    database: str | None,
    demo: bool | None,
    workers: int | None,
) -> None:
    """Run export workers without the API, on the same data directory (or database).

    \b
    Examples:
      datapolicy worker --config datapolicy.toml --workers 4
      datapolicy serve --workers 0 & datapolicy worker   # API and exports apart
      DATAPOLICY_DATABASE=postgresql://datapolicy@db.internal/datapolicy datapolicy worker
    """
    settings = _settings(
        config_file, data_dir=data_dir, database=database, demo=demo, workers=workers
    )
    from datapolicy.server import run_worker

    try:
        run_worker(settings)
    except Unavailable as exc:  # the operation store
        raise click.ClickException(exc.message) from None


class Duration(click.ParamType):
    """A lifetime: a number of seconds, minutes, hours or days (`90s`, `10m`, `1h`, `7d`)."""

    name = "duration"
    _UNITS: ClassVar[dict[str, int]] = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        match = re.fullmatch(r"([1-9][0-9]*)([smhd])", str(value).strip())
        if match is None:
            self.fail(f"{value!r} is not a duration such as 90s, 10m, 1h or 7d", param, ctx)
        seconds = int(match[1]) * self._UNITS[match[2]]
        if seconds > MAX_TOKEN_LIFETIME_S:
            self.fail(f"{value!r} is longer than {MAX_TOKEN_LIFETIME_S // 86400} days", param, ctx)
        return seconds


@main.command()
@_data_dir_option
@_config_option
@click.option(
    "--permission",
    "permissions",
    multiple=True,
    required=True,
    type=click.Choice(PERMISSIONS),
    help="A permission the token grants (repeat for several).",
)
@click.option(
    "--expires", default="1h", show_default=True, type=Duration(), help="How long it is valid."
)
@click.option(
    "--subject", default="datapolicy-cli", show_default=True, help="Who it is for (sub claim)."
)
def token(
    data_dir: Path | None,
    config_file: Path | None,
    permissions: tuple[str, ...],
    expires: int,
    subject: str,
) -> None:
    """Print an access token signed with the service's own key (in the data directory).

    The token carries the permissions as application roles, and the issuer and audience the
    service checks ([auth] issuer and audience; by default datapolicy and api://datapolicy).
    With a JWKS configured, tokens come from that identity provider instead.

    \b
    Examples:
      datapolicy token --permission User.Export.All --permission User.Read.All
      TOKEN=$(datapolicy token --permission User.Export.All --expires 10m)
      curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/v1.0/dataPolicyOperations
    """
    settings = _settings(config_file, data_dir=data_dir)
    auth = settings.config.auth
    if auth.uses_jwks:
        raise click.ClickException(
            "[auth] names a JWKS: tokens come from that identity provider, not from this command"
        )
    from datapolicy.auth.keys import signing_key
    from datapolicy.auth.tokens import issue_token

    try:
        key = signing_key(settings.data_dir)
    except Unavailable as exc:
        raise click.ClickException(exc.message) from None
    click.echo(
        issue_token(
            key,
            issuer=auth.issuer,
            audience=auth.audience,
            permissions=permissions,
            lifetime=expires,
            subject=subject,
        )
    )


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
