"""The HTTP client behind `datapolicy export`, `ops` and `users`.

These commands talk to the API, never to the store directly: so they work against any deployment
(one process or many, SQLite or PostgreSQL), and their requests pass through authentication,
permissions and everything else in front of the routes, exactly as any client's do.

The token is `--token` (or `DATAPOLICY_TOKEN`); without one, and when the service signs its own
tokens (no JWKS configured) and its signing key is in the local data directory, a short-lived
token holding only the permission the command needs is minted with that key, as `datapolicy
token` would. An error answer becomes one line: `404 ResourceNotFound: ...`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import httpx

from datapolicy.cli.options import Command, config_option, data_dir_option, load_settings

DEFAULT_URL = "http://127.0.0.1:8080/v1.0"
MINTED_TOKEN_LIFETIME_S = 3600  # outlasts most `--wait`s; the token never leaves the process
TIMEOUT_S = 30.0


class ApiError(click.ClickException):
    """The API answered with an error; the message is its status, Graph code and message."""

    def __init__(self, response: httpx.Response):
        self.status_code = response.status_code
        retry_after = response.headers.get("retry-after", "")
        # Seconds to wait before trying again (429, 503), when the service says.
        self.retry_after = float(retry_after) if retry_after.isdigit() else None
        super().__init__(f"{response.status_code} {_describe(response)}")


def _describe(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return response.reason_phrase or "error"


def api_options(command: Command) -> Command:
    """--url and --token, and the data directory and configuration a token may be minted from."""
    for option in reversed(
        [
            click.option(
                "--url",
                envvar="DATAPOLICY_URL",
                default=DEFAULT_URL,
                show_default=True,
                help="The API root of the service to talk to.",
            ),
            click.option(
                "--token",
                envvar="DATAPOLICY_TOKEN",
                help="A bearer token.  [default: minted with the signing key in the data "
                "directory]",
            ),
            data_dir_option,
            config_option,
        ]
    ):
        command = option(command)
    return command


class Api:
    """The service's API root, with a bearer token; every error answer raises `ApiError`."""

    def __init__(self, url: str, token: str):
        # httpx logs every request at INFO, which `load_settings` enables: not a command's output.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        self.url = url.rstrip("/")
        self.http = httpx.Client(
            headers={"Authorization": f"Bearer {token}", "User-Agent": "datapolicy-cli"},
            timeout=TIMEOUT_S,
        )

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.http.close()

    def request(self, method: str, path_or_url: str, **arguments: Any) -> httpx.Response:
        url = path_or_url if "://" in path_or_url else self.url + path_or_url
        try:
            response = self.http.request(method, url, **arguments)
        except httpx.TransportError as exc:
            raise click.ClickException(f"cannot reach {self.url}: {exc}") from None
        if response.is_error:
            raise ApiError(response)
        return response

    def get(
        self,
        path_or_url: str,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = self.request(
            "GET", path_or_url, params=params, headers=headers
        ).json()
        return body

    def values(
        self,
        path: str,
        params: dict[str, str],
        *,
        follow: bool,
        headers: dict[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The items of a collection: its first page, or every page when `follow` (each
        request with `headers`)."""
        page = self.get(path, params, headers)
        yield from page["value"]
        while follow and "@odata.nextLink" in page:
            page = self.get(page["@odata.nextLink"], headers=headers)
            yield from page["value"]


def connect(
    url: str,
    token: str | None,
    data_dir: Path | None,
    config_file: Path | None,
    *permissions: str,
) -> Api:
    """The API at `url` with `token`, or with a token minted for `permissions` (see above)."""
    return Api(url, token or _minted_token(data_dir, config_file, permissions))


def _minted_token(
    data_dir: Path | None, config_file: Path | None, permissions: tuple[str, ...]
) -> str:
    from datapolicy.auth.keys import SIGNING_KEY_FILE, signing_key
    from datapolicy.auth.tokens import issue_token

    settings = load_settings(config_file, data_dir=data_dir)
    auth = settings.config.auth
    if auth.uses_jwks:
        raise click.ClickException(
            "no token: [auth] names a JWKS, so give one from that identity provider with "
            "--token or DATAPOLICY_TOKEN"
        )
    # Only an existing key: one made here would sign tokens no service accepts.
    if not (settings.data_dir / SIGNING_KEY_FILE).is_file():
        raise click.ClickException(
            f"no token: give --token or DATAPOLICY_TOKEN (no signing key in {settings.data_dir} "
            "to make one with; --data-dir names the service's data directory)"
        )
    return issue_token(
        signing_key(settings.data_dir),
        issuer=auth.issuer,
        audience=auth.audience,
        permissions=permissions,
        lifetime=MINTED_TOKEN_LIFETIME_S,
        subject="datapolicy-cli",
    )
