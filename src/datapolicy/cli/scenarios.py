"""`datapolicy scenarios`: the test-double controls of a `datapolicy serve --scenarios`, over its
admin API (docs/testing-with-datapolicy.md), with a token holding
DataPolicy.Scenarios.ReadWrite.All (minted from the data directory when none is given)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from datapolicy.auth.permissions import SCENARIOS
from datapolicy.cli.client import Api, api_options, connect
from datapolicy.cli.options import json_option
from datapolicy.cli.output import print_json, print_records, print_table

ADMIN = "/admin/datapolicy/scenarios"
REQUEST_COLUMNS = ("sequence", "time", "method", "path", "query", "status", "fault", "durationMs")
RULE_COLUMNS = ("id", "method", "route", "operationId", "faults", "matched")
FAILURE_COLUMNS = ("code", "message", "operationId")


def _admin(url: str, token: str | None, data_dir: Path | None, config_file: Path | None) -> Api:
    return connect(url, token, data_dir, config_file, SCENARIOS)


def _call(api: Api, method: str, path: str, **arguments: Any) -> Any:
    response = api.request(method, f"{ADMIN}{path}", **arguments)
    return response.json() if response.content else None


@click.group()
def scenarios() -> None:
    """Steer a test double started with `datapolicy serve --scenarios`: faults, time, failures,
    the request log, reset and snapshots (`show`: all of it at once)."""


@scenarios.command()
@api_options
@json_option
def show(
    url: str, token: str | None, data_dir: Path | None, config_file: Path | None, as_json: bool
) -> None:
    """The current time mode, fault rules, queued export failures and snapshots.

    \b
    Examples:
      datapolicy scenarios show
      datapolicy scenarios show --json > setup.json   # serve --scenarios-file setup.json
    """
    with _admin(url, token, data_dir, config_file) as api:
        state = _call(api, "GET", "")
    if as_json:
        print_json(state)
        return
    click.echo(f"time: {describe_time(state['time'])}")
    rules = state["faults"]
    click.echo(f"fault rules: {len(rules) or 'none'}")
    if rules:
        print_table(RULE_COLUMNS, ([_rule_cell(rule, c) for c in RULE_COLUMNS] for rule in rules))
    failures = state["exportFailures"]
    click.echo(f"queued export failures: {len(failures) or 'none'}")
    if failures:
        print_records(failures, FAILURE_COLUMNS, as_json=False)
    click.echo(f"snapshots: {', '.join(state['snapshots']) or 'none'}")


def describe_time(mode: dict[str, Any]) -> str:
    """A time mode as a phrase: "slow: each export lasts at least 30 s"."""
    if mode["mode"] == "slow":
        return f"slow: each export lasts at least {mode['secondsPerExport']:g} s"
    if mode["mode"] == "step":
        return "step: exports move on `advance`" + (
            " and on each poll after the first" if mode["stepOnPoll"] else ""
        )
    return str(mode["mode"])


def _rule_cell(rule: dict[str, Any], column: str) -> Any:
    if column == "faults":
        if "sequence" in rule:
            return ", ".join(_fault_text(fault) for fault in rule["sequence"])
        return f"{_fault_text(rule['fault'])} at rate {rule['rate']:g}"
    if column == "route":
        return rule.get("route") or "(every route)"
    return rule.get(column)


def _fault_text(fault: dict[str, Any]) -> str:
    kind = fault.get("kind", "status")
    if kind == "status":
        return str(fault.get("status", 503))
    if kind == "drop":
        return "drop"
    return f"{kind} {fault.get('seconds', 0):g} s"


@scenarios.command()
@api_options
@click.option(
    "--route", help="Route template under the API root, e.g. /users/{id}/exportPersonalData."
)
@click.option("--method", help="Only this HTTP method.")
@click.option("--operation", "operation_id", help="Only requests for this operation id.")
@click.option(
    "--kind",
    type=click.Choice(["status", "latency", "timeout", "drop"]),
    default="status",
    show_default=True,
)
@click.option("--status", type=click.IntRange(400, 599), default=503, show_default=True)
@click.option("--code", help="Graph error code.  [default: by status, e.g. TooManyRequests]")
@click.option("--message", help="Graph error message.")
@click.option("--retry-after", type=click.IntRange(0), help="Retry-After seconds (status faults).")
@click.option("--seconds", type=click.FloatRange(0, 600), default=0.0, help="Latency or timeout.")
@click.option(
    "--times",
    type=click.IntRange(1, 1000),
    default=1,
    show_default=True,
    help="The next N matching requests get the fault.",
)
@click.option("--rate", type=click.FloatRange(0, 1), help="Instead of --times: this share of them.")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="For --rate: repeatable draws."
)
def fault(
    url: str,
    token: str | None,
    data_dir: Path | None,
    config_file: Path | None,
    route: str | None,
    method: str | None,
    operation_id: str | None,
    kind: str,
    status: int,
    code: str | None,
    message: str | None,
    retry_after: int | None,
    seconds: float,
    times: int,
    rate: float | None,
    seed: int,
) -> None:
    """Add a fault rule; prints it as JSON.

    \b
    Examples:
      datapolicy scenarios fault --status 429 --retry-after 5 --times 2
      datapolicy scenarios fault --route /users/{id}/exportPersonalData --kind drop
      datapolicy scenarios fault --kind latency --seconds 2 --rate 0.5 --seed 1
    """
    one: dict[str, Any] = {"kind": kind, "status": status, "seconds": seconds}
    for name, value in (("code", code), ("message", message), ("retryAfter", retry_after)):
        if value is not None:
            one[name] = value
    rule: dict[str, Any] = {"seed": seed}
    if rate is None:
        rule["sequence"] = [one] * times
    else:
        rule.update(fault=one, rate=rate)
    for name, value in (("route", route), ("method", method), ("operationId", operation_id)):
        if value is not None:
            rule[name] = value
    with _admin(url, token, data_dir, config_file) as api:
        print_json(_call(api, "POST", "/faults", json=rule))


@scenarios.command(name="clear-faults")
@api_options
def clear_faults(
    url: str, token: str | None, data_dir: Path | None, config_file: Path | None
) -> None:
    """Remove every fault rule."""
    with _admin(url, token, data_dir, config_file) as api:
        _call(api, "DELETE", "/faults")
    click.echo("fault rules cleared")


@scenarios.command(name="time")
@click.argument("mode", type=click.Choice(["normal", "slow", "step"]))
@api_options
@click.option(
    "--seconds",
    type=click.FloatRange(0, 3600),
    default=0.0,
    help="slow: how long each export lasts at least.",
)
@click.option("--on-poll", is_flag=True, help="step: every GET of an operation advances it.")
def time_mode(
    mode: str,
    url: str,
    token: str | None,
    data_dir: Path | None,
    config_file: Path | None,
    seconds: float,
    on_poll: bool,
) -> None:
    """Set how exports move: normal, slow (--seconds each), or step (until `advance`).

    \b
    Examples:
      datapolicy scenarios time step
      datapolicy scenarios time slow --seconds 30
    """
    body = {"mode": mode, "secondsPerExport": seconds, "stepOnPoll": on_poll}
    with _admin(url, token, data_dir, config_file) as api:
        print_json(_call(api, "PUT", "/time", json=body))


@scenarios.command()
@click.argument("operation_id")
@api_options
def advance(
    operation_id: str, url: str, token: str | None, data_dir: Path | None, config_file: Path | None
) -> None:
    """Move a stepped export to its next state (notStarted -> running -> complete); prints it."""
    with _admin(url, token, data_dir, config_file) as api:
        click.echo(_call(api, "POST", f"/operations/{operation_id}/advance")["status"])


@scenarios.command(name="fail-export")
@api_options
@click.option("--code", required=True, help="The operation's error code.")
@click.option("--message", default="The export failed.", show_default=True)
@click.option(
    "--operation", "operation_id", help="Only this operation.  [default: the next export]"
)
def fail_export(
    url: str,
    token: str | None,
    data_dir: Path | None,
    config_file: Path | None,
    code: str,
    message: str,
    operation_id: str | None,
) -> None:
    """Make the next export (or that operation's) fail with this error."""
    body = {"code": code, "message": message, "operationId": operation_id}
    with _admin(url, token, data_dir, config_file) as api:
        _call(api, "POST", "/exportFailures", json=body)
    which = "the next export" if operation_id is None else f"the export of {operation_id}"
    click.echo(f"{which} will fail with {code}")


@scenarios.command()
@api_options
@json_option
@click.option("--method", help="Only this HTTP method.")
@click.option("--path-prefix", help="Only paths starting so, e.g. /v1.0/users.")
@click.option("--since", type=click.IntRange(0), default=0, help="After this sequence number.")
def requests(
    url: str,
    token: str | None,
    data_dir: Path | None,
    config_file: Path | None,
    as_json: bool,
    method: str | None,
    path_prefix: str | None,
    since: int,
) -> None:
    """The request log, oldest first (headers with --json)."""
    params = {"since": str(since)}
    if method is not None:
        params["method"] = method
    if path_prefix is not None:
        params["pathPrefix"] = path_prefix
    with _admin(url, token, data_dir, config_file) as api:
        logged = _call(api, "GET", "/requests", params=params)["value"]
    print_records(logged, REQUEST_COLUMNS, as_json)


@scenarios.command()
@api_options
def reset(url: str, token: str | None, data_dir: Path | None, config_file: Path | None) -> None:
    """Delete every operation and package; clear faults, failures, the log; normal time."""
    with _admin(url, token, data_dir, config_file) as api:
        deleted = _call(api, "POST", "/reset")["deletedOperations"]
    click.echo(f"reset: {deleted} operations deleted")


@scenarios.command()
@click.argument("name")
@api_options
def snapshot(
    name: str, url: str, token: str | None, data_dir: Path | None, config_file: Path | None
) -> None:
    """Save the operations and packages as NAME (SQLite store only)."""
    with _admin(url, token, data_dir, config_file) as api:
        _call(api, "PUT", f"/snapshots/{name}")
    click.echo(f"snapshot '{name}' saved")


@scenarios.command()
@click.argument("name")
@api_options
def restore(
    name: str, url: str, token: str | None, data_dir: Path | None, config_file: Path | None
) -> None:
    """Bring back the operations and packages saved as NAME."""
    with _admin(url, token, data_dir, config_file) as api:
        _call(api, "POST", f"/snapshots/{name}/restore")
    click.echo(f"snapshot '{name}' restored")
