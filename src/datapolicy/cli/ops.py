"""`datapolicy ops`: list, show, cancel and delete dataPolicyOperations through the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from datapolicy.auth.permissions import ERASE, EXPORT
from datapolicy.cli.client import ApiError, api_options, connect
from datapolicy.cli.options import json_option
from datapolicy.cli.output import print_entity, print_records
from datapolicy.model import ENTITY_SET

COLUMNS = (
    "id",
    "userId",
    "operationType",
    "dryRun",  # an erasure's: a dry run, or the erasure itself; empty for an export
    "status",
    "progress",
    "submittedDateTime",
    "completedDateTime",
)
FINAL_STATUSES = ("complete", "failed")


def operation_path(operation_id: str) -> str:
    return f"/{ENTITY_SET}/{quote(operation_id, safe='')}"


def without_annotations(operation: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in operation.items() if not name.startswith("@")}


@click.group()
def ops() -> None:
    """Inspect and manage dataPolicyOperations (exports) through the API."""


@ops.command(name="list")
@api_options
@json_option
@click.option("--filter", "filter_", metavar="EXPR", help="An OData $filter.")
@click.option("--orderby", metavar="EXPR", help="An OData $orderby.")
@click.option("--top", type=click.IntRange(1), help="At most this many per page.")
@click.option("--all", "follow", is_flag=True, help="Follow @odata.nextLink to the last page.")
def list_operations(
    url: str,
    token: str | None,
    data_dir: Path | None,
    config_file: Path | None,
    as_json: bool,
    filter_: str | None,
    orderby: str | None,
    top: int | None,
    follow: bool,
) -> None:
    """List operations, as a table (or a JSON array with --json).

    The options are passed to the API as OData's $filter, $orderby and $top.

    \b
    Examples:
      datapolicy ops list
      datapolicy ops list --filter "status eq 'failed'" --orderby "submittedDateTime desc"
      datapolicy ops list --filter "userId eq '6f1c...'" --all --json
    """
    params = {
        f"${name}": str(value)
        for name, value in (("filter", filter_), ("orderby", orderby), ("top", top))
        if value is not None
    }
    with connect(url, token, data_dir, config_file, EXPORT) as api:
        operations = [
            without_annotations(item)
            for item in api.values(f"/{ENTITY_SET}", params, follow=follow)
        ]
    print_records(operations, COLUMNS, as_json)


@ops.command()
@click.argument("operation_id")
@api_options
@json_option
def show(
    operation_id: str,
    url: str,
    token: str | None,
    data_dir: Path | None,
    config_file: Path | None,
    as_json: bool,
) -> None:
    """Show one operation: every property, including why it failed.

    \b
    Examples:
      datapolicy ops show 0aeb517a-0cf7-4ba0-80b9-65a0a9a74c66
      datapolicy ops show 0aeb517a-0cf7-4ba0-80b9-65a0a9a74c66 --json | jq -r .status
    """
    with connect(url, token, data_dir, config_file, EXPORT) as api:
        operation = without_annotations(api.get(operation_path(operation_id)))
    print_entity(operation, as_json)


@ops.command()
@click.argument("operation_id")
@api_options
def cancel(
    operation_id: str, url: str, token: str | None, data_dir: Path | None, config_file: Path | None
) -> None:
    """Cancel an operation that has not finished (its record and partial output go).

    Unlike `delete`, it never touches a finished operation: if the export completed or failed
    meanwhile (even between this command's read and its request: the request carries the ETag
    it read), nothing is deleted and the command fails.

    \b
    Example:
      datapolicy ops cancel 0aeb517a-0cf7-4ba0-80b9-65a0a9a74c66
    """
    path = operation_path(operation_id)
    with connect(url, token, data_dir, config_file, EXPORT, ERASE) as api:  # erasures too
        operation = api.get(path)
        if operation["status"] in FINAL_STATUSES:
            raise click.ClickException(
                f"operation {operation_id} is already {operation['status']}; "
                "`datapolicy ops delete` removes it (and its package)"
            )
        try:
            api.request("DELETE", path, headers={"If-Match": operation["@odata.etag"]})
        except ApiError as exc:
            if exc.status_code != 412:
                raise
            status = api.get(path)["status"]
            raise click.ClickException(
                f"operation {operation_id} changed meanwhile (now {status}); not cancelled"
            ) from None
    click.echo(f"cancelled {operation_id}")


@ops.command()
@click.argument("operation_id")
@api_options
def delete(
    operation_id: str, url: str, token: str | None, data_dir: Path | None, config_file: Path | None
) -> None:
    """Delete an operation in any state: a running export is cancelled, a published package
    is deleted with it (except at a presigned S3 URL, which cannot delete).

    \b
    Example:
      datapolicy ops delete 0aeb517a-0cf7-4ba0-80b9-65a0a9a74c66
    """
    with connect(url, token, data_dir, config_file, EXPORT, ERASE) as api:  # erasures too
        api.request("DELETE", operation_path(operation_id))
    click.echo(f"deleted {operation_id}")


@ops.command()
@click.argument("operation_id")
@api_options
def approve(
    operation_id: str, url: str, token: str | None, data_dir: Path | None, config_file: Path | None
) -> None:
    """Approve an erasure that waits for approval (`[erasure] approval = "required"`).

    The token must hold PersonalData.Erase.All and name a principal other than the one who
    requested the erasure (the requester's own approval is refused): give it with --token, or
    make one for another subject with `datapolicy token --permission PersonalData.Erase.All
    --subject NAME`.

    \b
    Example:
      datapolicy ops approve 0aeb517a-0cf7-4ba0-80b9-65a0a9a74c66 --token "$APPROVER_TOKEN"
    """
    with connect(url, token, data_dir, config_file, ERASE) as api:
        api.request("POST", operation_path(operation_id) + "/approve")
    click.echo(f"approved {operation_id}")
