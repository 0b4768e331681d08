"""`datapolicy token`: a token signed with the service's own key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from datapolicy.auth.permissions import PERMISSIONS
from datapolicy.cli.options import config_option, data_dir_option, load_settings
from datapolicy.durations import parse_duration

MAX_TOKEN_LIFETIME_S = 30 * 86400


class Duration(click.ParamType[int]):
    """A lifetime: a number of seconds, minutes, hours or days (`90s`, `10m`, `1h`, `7d`)."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if seconds > MAX_TOKEN_LIFETIME_S:
            self.fail(f"{value!r} is longer than {MAX_TOKEN_LIFETIME_S // 86400} days", param, ctx)
        return seconds


@click.command()
@data_dir_option
@config_option
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
    settings = load_settings(config_file, data_dir=data_dir)
    auth = settings.config.auth
    if auth.uses_jwks:
        raise click.ClickException(
            "[auth] names a JWKS: tokens come from that identity provider, not from this command"
        )
    from datapolicy.auth.keys import signing_key
    from datapolicy.auth.tokens import issue_token

    click.echo(
        issue_token(
            signing_key(settings.data_dir),
            issuer=auth.issuer,
            audience=auth.audience,
            permissions=permissions,
            lifetime=expires,
            subject=subject,
        )
    )
