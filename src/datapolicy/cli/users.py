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


#: Sent with every directory query: Graph answers `$search` and other advanced queries only
#: with it (a service under `--profile graph` too), and it changes nothing otherwise.
EVENTUAL = {"ConsistencyLevel": "eventual"}
#: Sent with every `--filter`: Graph answers `endsWith`, `ne`, `not` and `$filter` with
#: `$orderby` only with `$count=true` as well (docs/graph-compatibility.md, "Directory
#: queries"); a filter's count is one more indexed statement, and the CLI shows no count.
COUNTED = {"$count": "true"}


@users.command(name="list")
@api_options
@json_option
@click.option("--filter", "filter_", metavar="EXPR", help="An OData $filter on the users.")
@click.option(
    "--search",
    metavar="TEXT",
    help='Words a name starts with, or the start of a mail; or Graph\'s "property:text" syntax.',
)
@click.option("--orderby", metavar="EXPR", help="An OData $orderby (e.g. displayName).")
@click.option("--top", type=click.IntRange(1), help="At most this many per page.")
@click.option("--all", "follow", is_flag=True, help="Follow @odata.nextLink to the last page.")
def list_users(
    url: str,
    token: str | None,
    data_dir: Path | None,
    config_file: Path | None,
    as_json: bool,
    filter_: str | None,
    search: str | None,
    orderby: str | None,
    top: int | None,
    follow: bool,
) -> None:
    """List users in id order (or --orderby's), as a table (or a JSON array with --json).

    --filter and --orderby are passed to the API as OData's $filter and $orderby. --search
    TEXT finds the users with a word of their name starting with TEXT or whose mail starts
    with it; TEXT with a double quote is passed as Graph's $search syntax as it is.

    \b
    Examples:
      datapolicy users list --top 10
      datapolicy users list --filter "mail eq 'ada@example.com'"
      datapolicy users list --search lovelace
      datapolicy users list --search '"displayName:ada" AND "mail:ada"'
      datapolicy users list --all --json | jq -r '.[].id'
    """
    options = {
        "filter": filter_,
        "search": None if search is None else search_expression(search),
        "orderby": orderby,
        "top": None if top is None else str(top),
    }
    params = {f"${name}": value for name, value in options.items() if value is not None}
    if filter_ is not None:
        params |= COUNTED
    with connect(url, token, data_dir, config_file, READ_USERS) as api:
        found = [
            without_annotations(u)
            for u in api.values("/users", params, follow=follow, headers=EVENTUAL)
        ]
    print_records(found, COLUMNS, as_json)


def search_expression(text: str) -> str:
    """`--search TEXT` as Graph's `$search`: TEXT as it is if it has a double quote (Graph's
    own syntax), else a search of the names and the mails for it."""
    if '"' in text:
        return text
    escaped = text.replace("\\", "\\\\")
    return f'"displayName:{escaped}" OR "mail:{escaped}"'


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
