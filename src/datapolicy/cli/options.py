"""Options and set-up that several commands share."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from datapolicy import redact
from datapolicy.logs import configure_logging
from datapolicy.settings import DEFAULT_DATA_DIR, Settings

# A command's function, handed back by an option decorator as it came in.
Command = TypeVar("Command", bound=Callable[..., Any])

data_dir_option = click.option(
    "--data-dir",
    envvar="DATAPOLICY_DATA_DIR",
    type=click.Path(path_type=Path),
    help=f"Where the database, keys and local packages live.  [default: ./{DEFAULT_DATA_DIR}]",
)
config_option = click.option(
    "--config",
    "config_file",
    envvar="DATAPOLICY_CONFIG",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A TOML configuration file; options and environment variables override it.",
)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of a table."
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


database_option = click.option(
    "--database",
    envvar="DATAPOLICY_DATABASE",
    callback=_database_url,
    help="The operation store: sqlite:///FILE or postgresql://USER:PASSWORD@HOST/DB "
    "(overrides [store] url).  [default: SQLite in the data directory]",
)


def process_options(command: Command) -> Command:
    """Options that `serve` and `worker` share."""
    for option in reversed(
        [
            data_dir_option,
            config_option,
            database_option,
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


def settings_from(config_file: Path | None, **overrides: Any) -> Settings:
    """The settings a command runs with: defaults, the configuration file, then `overrides`
    (its options). Nothing else: the in-process tests build a service's settings with it."""
    settings = Settings()
    if config_file is not None:
        settings = settings.with_file(config_file)  # ConfigError (cli/__init__.py prints it)
    return settings.with_overrides(**overrides)


def load_settings(
    config_file: Path | None, *, long_running: bool = False, **overrides: Any
) -> Settings:
    """`settings_from`, with this process's logging set up for them: at `[logging] level` for
    the `long_running` processes (`serve`, `worker`), else at WARNING at least, so that a
    command's output is not interleaved with the INFO lines of what it opens (a key it creates,
    the store it migrates): those are a service's log, not a command's (docs/observability.md)."""
    settings = settings_from(config_file, **overrides)
    redact.install()  # no SAS, signature, token or password reaches the log (docs/security.md)
    minimum = logging.NOTSET if long_running else logging.WARNING
    configure_logging(settings.config.logging, minimum)  # text on a terminal, else JSON lines
    return settings
