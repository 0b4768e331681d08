"""The HTTP client behind `datapolicy export`, `ops` and `users`.

These commands talk to the API, never to the store directly: so they work against any deployment
(one process or many, SQLite or PostgreSQL), and their requests pass through authentication,
permissions and everything else in front of the routes, exactly as any client's do.

The token is `--token` (or `DATAPOLICY_TOKEN`); without one, and when the service signs its own
tokens (no JWKS configured) and its signing key is in the local data directory, a short-lived
token holding only the permission the command needs is minted with that key, as `datapolicy
token` would. An error answer becomes one line: `404 ResourceNotFound: ...`.

The service is `--url` (or `DATAPOLICY_URL`); without one, the `[server]` host and port of the
`--config` file, the service's own; else `DEFAULT_URL`. A service that cannot be reached is one
line naming the URL tried, where it came from, and how to give another.

httpx is imported when a command connects (about 0.1 s of CPU that `--help` need not pay: see
cli/__init__.py).
"""

from __future__ import annotations

import ipaddress
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from datapolicy.cli.options import (
    Command,
    config_option,
    data_dir_option,
    load_settings,
    settings_from,
)
from datapolicy.settings import Settings

if TYPE_CHECKING:
    import httpx

DEFAULT_URL = "http://127.0.0.1:8080/v1.0"
MINTED_TOKEN_LIFETIME_S = 3600  # outlasts most `--wait`s; the token never leaves the process
TIMEOUT_S = 30.0
RETRYABLE_STATUSES = (429, 503)  # with a Retry-After: come back later
MAX_RETRIES = 5  # in a row, for one request
MAX_RETRY_WAIT_S = 30.0  # however long the Retry-After


class ApiError(click.ClickException):
    """The API answered with an error; the message is its status, Graph code and message."""

    def __init__(self, response: httpx.Response):
        self.status_code = response.status_code
        retry_after = response.headers.get("retry-after", "")
        # Seconds to wait before trying again (429, 503), when the service says.
        self.retry_after = float(retry_after) if retry_after.isdigit() else None
        super().__init__(f"{response.status_code} {_describe(response)}")


def transient(exc: ApiError) -> bool:
    """Whether `exc` says "come back later": the service did nothing and the same request may
    be sent again."""
    return exc.status_code in RETRYABLE_STATUSES and exc.retry_after is not None


def retry_wait(exc: ApiError, retries: int) -> float | None:
    """Seconds to wait before repeating the request `exc` answered, after `retries` repeats of
    it already; None when it should not be repeated (not `transient`, or `MAX_RETRIES`
    reached)."""
    if not transient(exc) or retries >= MAX_RETRIES:
        return None
    assert exc.retry_after is not None
    return min(exc.retry_after, MAX_RETRY_WAIT_S)


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
                help="The API root of the service to talk to.  [default: the --config file's "
                f"[server] host and port, else {DEFAULT_URL}]",
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
    """The service's API root, with a bearer token; every error answer raises `ApiError`
    (after the repeats `retry_wait` allows, each after `sleep`)."""

    def __init__(
        self,
        url: str,
        token: str,
        origin: str = "--url",
        *,
        sleep: Callable[[float], None] = time.sleep,
    ):
        import httpx

        self.url = url.rstrip("/")
        self.origin = origin  # where the URL came from, for the hint when it cannot be reached
        self.sleep = sleep
        self.http = httpx.Client(
            headers={"Authorization": f"Bearer {token}", "User-Agent": "datapolicy-cli"},
            timeout=TIMEOUT_S,
        )

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.http.close()

    def request(self, method: str, path_or_url: str, **arguments: Any) -> httpx.Response:
        """The answer to one request, repeated while `retry_wait` says so (with the same
        `client-request-id`)."""
        arguments["headers"] = {
            **(arguments.get("headers") or {}),
            "client-request-id": str(uuid.uuid4()),
        }
        retries = 0
        while True:
            try:
                return self._request_once(method, path_or_url, **arguments)
            except ApiError as exc:
                wait_s = retry_wait(exc, retries)
                if wait_s is None:
                    raise
            self.sleep(wait_s)
            retries += 1

    def _request_once(self, method: str, path_or_url: str, **arguments: Any) -> httpx.Response:
        import httpx

        url = path_or_url if "://" in path_or_url else self.url + path_or_url
        try:
            response = self.http.request(method, url, **arguments)
        except httpx.TransportError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise click.ClickException(
                    f"cannot trust {self.url}'s certificate ({TLS_HINT}): {exc}"
                ) from None
            raise click.ClickException(
                f"cannot reach {self.url} ({self.origin}; {URL_HINT}): {exc}"
            ) from None
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
    url: str | None,
    token: str | None,
    data_dir: Path | None,
    config_file: Path | None,
    *permissions: str,
) -> Api:
    """The API at `url` (or the one `config_file` serves, see above) with `token`, or with a
    token minted for `permissions`."""
    root, origin = api_url(url, config_file)
    return Api(root, token or _minted_token(data_dir, config_file, permissions), origin)


URL_HINT = "give the service's API root with --url or DATAPOLICY_URL, or its --config"
# httpx trusts the certificates of SSL_CERT_FILE (or SSL_CERT_DIR) instead of its own list.
TLS_HINT = (
    "name the certificate to trust with SSL_CERT_FILE=FILE; `serve --tls-self-signed` writes it "
    "as tls-self-signed.crt in its data directory"
)


def api_url(url: str | None, config_file: Path | None) -> tuple[str, str]:
    """The API root a client command talks to, and where it came from: `url` (the option or
    DATAPOLICY_URL), else the `[server]` host and port of `config_file` (a wildcard address
    is reached on the loopback interface), else `DEFAULT_URL`."""
    if url is not None:
        return url, "from --url or DATAPOLICY_URL"
    if config_file is None:
        return DEFAULT_URL, "the default"
    host, port = _server_address(config_file)
    return f"http://{_connectable(host)}:{port}/v1.0", f"[server] of {config_file}"


def _server_address(config_file: Path) -> tuple[str, int]:
    """The host and port `serve` listens on by `config_file`. Its [server] host and port are
    read as TOML when they are plainly valid: validating the whole file loads pydantic's models
    (half a second of CPU, bench/cli_startup.py) that a client command does not otherwise need.
    Anything else (an unreadable file, a port out of range) is validated, so the error is the
    one `serve` would give."""
    try:
        server = tomllib.loads(config_file.read_text(encoding="utf-8")).get("server", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        server = None
    if isinstance(server, dict):
        # The dataclass's defaults: an instance would build the (pydantic) default config.
        host, port = server.get("host", Settings.host), server.get("port", Settings.port)
        if isinstance(host, str) and type(port) is int and 1 <= port <= 65535:
            return host, port
    settings = settings_from(config_file)  # raises the file's ConfigError
    return settings.host, settings.port


def _connectable(host: str) -> str:
    """`host` as a URL's host: a wildcard address (`0.0.0.0`, `::`) is the loopback one, and
    an IPv6 address is bracketed."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # a name
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    return f"[{address}]" if address.version == 6 else str(address)


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
