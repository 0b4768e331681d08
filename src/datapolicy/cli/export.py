"""`datapolicy export`: start a person's export through the API and, with --wait, follow it.

With --wait the exit status tells a script how the export ended (docs/cli.md lists them)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import click

from datapolicy.auth.permissions import EXPORT
from datapolicy.cli.client import Api, ApiError, api_options, connect, transient
from datapolicy.cli.ops import FINAL_STATUSES, without_annotations
from datapolicy.cli.options import Command, json_option
from datapolicy.cli.output import console, print_json

POLL_INTERVAL_S = 0.5
# Exit statuses (0 is complete; 1 an error such as a refused request, 2 a usage error).
EXIT_FAILED = 3
EXIT_CANCELLED = 4  # deleted while we waited: cancelled, or removed by someone else
EXIT_TIMED_OUT = 5


def follow_options(operation: str) -> Callable[[Command], Command]:
    """`--wait` and `--timeout` of a command that starts an `operation` (an export, an
    erasure), for `start_and_follow`."""

    def decorate(command: Command) -> Command:
        command = click.option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            metavar="SECONDS",
            help=f"With --wait: give up waiting after this long (the {operation} goes on).",
        )(command)
        return click.option("--wait", is_flag=True, help=f"Follow the {operation} until it ends.")(
            command
        )

    return decorate


@click.command()
@click.argument("user_id")
@click.option(
    "--to",
    "location",
    required=True,
    metavar="LOCATION",
    help="The storageLocation: a directory, file:// URL, Azure SAS URL, s3://BUCKET/PREFIX or "
    "presigned S3 PUT URL the service permits.",
)
@follow_options("export")
@api_options
@json_option
def export(
    user_id: str,
    location: str,
    wait: bool,
    timeout: float | None,
    url: str,
    token: str | None,
    data_dir: Path | None,
    config_file: Path | None,
    as_json: bool,
) -> None:
    """Export USER_ID's personal data to LOCATION (Graph's exportPersonalData).

    Prints the new operation's id (or, with --json, the operation). With --wait it shows the
    progress (a bar on a terminal, lines as it moves otherwise: docs/cli.md) and then where the
    package is; the exit status is 0 when the export completed, 3 when it failed, 4 when it was
    cancelled (deleted) meanwhile and 5 when --timeout ran out first.

    \b
    Examples:
      datapolicy export 6f1c2d4e-8a3b-5c7d-9e0f-1a2b3c4d5e6f --to /srv/exports --wait
      datapolicy export "$USER_ID" --to s3://exports/2026/ --wait --timeout 600 --json
      DATAPOLICY_URL=https://dp.internal/v1.0 DATAPOLICY_TOKEN=... datapolicy export ID --to ...
    """
    with connect(url, token, data_dir, config_file, EXPORT) as api:
        action = f"/users/{quote(user_id, safe='')}/exportPersonalData"
        start_and_follow(api, action, {"storageLocation": location}, wait, timeout, as_json)


def start_and_follow(
    api: Api,
    action: str,
    body: dict[str, object],
    wait: bool,
    timeout: float | None,
    as_json: bool,
) -> None:
    """POST `body` to the `action` that starts an operation, then print its id (or, with
    `as_json`, the operation); with `wait`, follow it to its end and print where its package
    is, exiting with export's statuses."""
    started = api.request("POST", action, json=body)
    operation_url = started.headers["location"]
    if not wait:
        if as_json:
            print_json(without_annotations(api.get(operation_url)))
        else:
            click.echo(operation_url.rsplit("/", 1)[-1])
        return
    operation = follow(api, operation_url, timeout, show=not as_json)
    if as_json:
        print_json(without_annotations(operation))
    if operation["status"] == "complete":
        if not as_json:
            click.echo(f"complete: {package_location(operation)}")
        return
    error = operation.get("error") or {}
    click.echo(f"failed: {error.get('code')}: {error.get('message')}", err=True)
    raise SystemExit(EXIT_FAILED)


def follow(
    api: Api,
    operation_url: str,
    timeout: float | None,
    *,
    show: bool,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    echo: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Poll the operation until it is final, showing its progress (cli/progress.py) and, for
    an erasure, whether it waits for approval and how to give it (`approval_notes`); exits 4
    if it is deleted, 5 on the timeout. `clock`, `sleep` and `echo` (stderr's lines) are
    injectable for tests."""
    from datapolicy.cli.progress import ProgressView  # only here: rich costs every start

    say = echo or _stderr
    deadline = None if timeout is None else clock() + timeout
    with ProgressView(console(), show=show, clock=clock, echo=echo) as view:
        status = "notStarted"  # as last seen
        approval: str | None = None  # the approval status last seen
        while True:
            try:
                operation = api.get(operation_url)
            except ApiError as exc:
                if exc.status_code == 404:
                    view.stop()
                    say("cancelled: the operation was deleted")
                    raise SystemExit(EXIT_CANCELLED) from None
                if not transient(exc):
                    raise
                # The request waited out `MAX_RETRIES` of them in a row already; polling goes
                # on through a longer rate limit or outage until the timeout.
            else:
                status = operation["status"]
                seen = (operation.get("approval") or {}).get("status")
                if seen != approval:
                    for line in approval_notes(operation, approval, api.url):
                        view.note(line)
                    approval = seen
                view.update(status, operation["progress"], operation.get("progressDetail"))
                if status in FINAL_STATUSES:
                    return operation
            if deadline is not None and clock() > deadline:
                view.stop()
                waiting = ", waiting for approval" if approval == "pending" else ""
                say(f"timed out: the operation is still {status}{waiting}")
                raise SystemExit(EXIT_TIMED_OUT)
            sleep(POLL_INTERVAL_S)


def _stderr(line: str) -> None:
    click.echo(line, err=True)


def approval_notes(operation: dict[str, Any], before: str | None, api_url: str) -> list[str]:
    """What to tell the person following an erasure when its `approval` changed from `before`
    (docs/erasure.md, "Approval"): that it waits, who may approve it and how, and what is to
    be approved (a dry run or the erasure itself, and who requested it); then who approved
    it."""
    approval = operation.get("approval") or {}
    if approval.get("status") == "pending":
        operation_id = operation["id"]
        notes = [
            f"waiting for approval: erasure {operation_id} stays notStarted until a principal "
            "other than its requester, holding PersonalData.Erase.All, approves it:",
            f"  datapolicy ops approve {operation_id} --token <their token>",
            f"  (or POST {api_url}/dataPolicyOperations/{operation_id}/approve)",
        ]
        kind = erasure_kind(operation.get("dryRun"))
        if kind is not None:  # a service older than `dryRun` does not say
            requester = approval.get("requestedBy")
            by = f"; requested by {principal_text(requester)}" if requester else ""
            notes.append(f"  it is {kind}{by}")
        return notes
    if approval.get("status") == "approved" and before == "pending":
        approver = approval.get("approvedBy") or {}
        return [f"approved by {principal_text(approver)} at {approval.get('approvedDateTime')}"]
    return []


def erasure_kind(dry_run: object) -> str | None:
    """What an erasure with this `dryRun` does, for the person who approves or follows it;
    None when it is not said (an export, or a service older than the property)."""
    if dry_run is True:
        return "a dry run (dryRun true): it changes nothing"
    if dry_run is False:
        return "the erasure itself (dryRun false): once run, it cannot be undone"
    return None


def principal_text(principal: object) -> str:
    """A principal of `approval` (`requestedBy`, `approvedBy`) as a person reads it."""
    if not isinstance(principal, dict):
        return str(principal)
    return f"{principal.get('subject')} (application {principal.get('application')})"


def package_location(operation: dict[str, Any]) -> str:
    """Where a complete operation's package is: `<id>.zip` at its storage location (a URL's
    query, which may hold a signature, left out); a presigned S3 PUT URL names the object."""
    location: str = operation["storageLocation"]
    if "://" in location:
        parts = urlsplit(location)
        location = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        if "x-amz-signature=" in parts.query.lower():
            return location
    return f"{location.rstrip('/')}/{operation['id']}.zip"
