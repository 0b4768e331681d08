"""`datapolicy erase`: start a person's erasure through the API (docs/erasure.md) and, with
--wait, follow it, with `export`'s progress and exit statuses (docs/cli.md)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import click

from datapolicy.auth.permissions import ERASE, EXPORT
from datapolicy.cli.client import api_options, connect
from datapolicy.cli.export import follow_options, start_and_follow
from datapolicy.cli.options import json_option


@click.command()
@click.argument("user_id")
@click.option("--dry-run", is_flag=True, help="Compute everything, change nothing.")
@click.option(
    "--to",
    "location",
    metavar="LOCATION",
    help="Where the dry run's package or the receipt goes.  [default: the data directory's "
    "exports/]",
)
@follow_options("erasure")
@api_options
@json_option
def erase(
    user_id: str,
    dry_run: bool,
    location: str | None,
    wait: bool,
    timeout: float | None,
    url: str,
    token: str | None,
    data_dir: Path | None,
    config_file: Path | None,
    as_json: bool,
) -> None:
    """Erase USER_ID's personal data by the configuration's erasure rules.

    Prints the new operation's id (or, with --json, the operation). With --wait it shows the
    progress and then where the package (a dry run's) or the receipt is; the exit status is 0
    when the erasure completed, 3 when it failed, 4 when it was deleted meanwhile and 5 when
    --timeout ran out first. A token needs PersonalData.Erase.All (and User.Export.All to
    follow the operation).

    \b
    Examples:
      datapolicy erase 6f1c2d4e-8a3b-5c7d-9e0f-1a2b3c4d5e6f --dry-run --wait
      datapolicy erase "$USER_ID" --wait --json
    """
    body: dict[str, object] = {"dryRun": dry_run}
    if location is not None:
        body["storageLocation"] = location
    with connect(url, token, data_dir, config_file, ERASE, EXPORT) as api:
        action = f"/users/{quote(user_id, safe='')}/erasePersonalData"
        start_and_follow(api, action, body, wait, timeout, as_json)
