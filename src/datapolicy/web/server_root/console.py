"""The web console's static files at `/console` (docs/console.md), answered before
authentication.

The console is only another API client: its page and scripts hold no data, and everything it
shows it fetches from `/v1.0` with the bearer token the user signs in with. So the files are
public, as the OpenAPI docs page is: a server-root route (web/routes/table.py), answered by
the request pipeline before authentication, like the health checks.

Every answer carries a strict Content-Security-Policy: scripts and styles from this origin only
(no inline code anywhere in the console), requests to this origin only, no framing.
"""

from __future__ import annotations

from importlib import resources

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from datapolicy.web.errors import on_http_exception
from datapolicy.web.routes.table import CONSOLE

_FILES = resources.files("datapolicy.web.server_root") / "console"
SECURITY_HEADERS = (
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        b"img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),  # revalidated (ETag): an upgrade is seen at once
)


class ConsoleFiles:
    """ASGI app: `/console/...` from the packaged files (`/console` redirects to `/console/`,
    the page)."""

    def __init__(self) -> None:
        self.files = StaticFiles(directory=str(_FILES), html=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        # StaticFiles serves the path below root_path, as if mounted there.
        try:
            await self.files({**scope, "root_path": CONSOLE}, receive, send_with_headers)
        except HTTPException as exc:  # an unknown file (404) or a method other than GET (405)
            response = await on_http_exception(Request(scope), exc)
            await response(scope, receive, send_with_headers)
