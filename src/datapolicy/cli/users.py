"""`datapolicy users`: the user directory, as the API serves it."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import click

from datapolicy.auth.permissions import READ_USERS
from datapolicy.cli.client import api_options, connect
from datapolicy.cli.ops import without_annotations
from datapolicy.cli.options import json_option
from datapolicy.cli.output import print_entity, print_records

COLUMNS = ("id", "displayName", "mail", "userPrincipalName")


@click.group()
def users() -> None:
    """Look people up in the user directory (the service's /users)."""


@users.command(name="list")
@api_options
@json_option
@click.option("--top", type=click.IntRange(1), help="At most this many per page.")
@click.option("--all", "follow", is_flag=True, help="Follow @odata.nextLink to the last page.")
def list_users(
    url: str,
    token: str | None,
    data_dir: Path | None,
    config_file: Path | None,
    as_json: bool,
    top: int | None,
    follow: bool,
) -> None:
    """List users in id order, as a table (or a JSON array with --json).

    \b
    Examples:
      datapolicy users list --top 10
      datapolicy users list --all --json | jq -r '.[].id'
    """
    params = {"$top": str(top)} if top is not None else {}
    with connect(url, token, data_dir, config_file, READ_USERS) as api:
        found = [without_annotations(u) for u in api.values("/users", params, follow=follow)]
    print_records(found, COLUMNS, as_json)


@users.command()
@click.argument("user_id")
@api_options
@json_option
def show(
    user_id: str,
    url: str,
    token: str | None,
    data_dir: Path | None,
    config_file: Path | None,
    as_json: bool,
) -> None:
    """Show one user.

    \b
    Example:
      datapolicy users show 6f1c2d4e-8a3b-5c7d-9e0f-1a2b3c4d5e6f
    """
    with connect(url, token, data_dir, config_file, READ_USERS) as api:
        user = without_annotations(api.get(f"/users/{quote(user_id, safe='')}"))
    print_entity(user, as_json)
