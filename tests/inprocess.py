"""The service in the test process: the app `datapolicy serve` runs (`server.build_app`), over
the settings `serve` parses from its options, with its lifespan run on an event loop of its own
in a thread, and a synchronous httpx transport that hands each request to that loop through
httpx's ASGI transport. No process to start and no port: what the HTTP contract tests need
(statuses, bodies, headers). What needs a process (signals, a port for another program, the
server's own handling of connections) runs `datapolicy serve` (conftest.py `start_service`).

The event loop is the service's for its whole life, as a server's is: what the app keeps
between requests (its caches, the rate budgets) lives there, and the blocking calls the app
makes on it block only the service, not the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from pathlib import Path

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal
from asgi_lifespan import LifespanManager

from datapolicy.cli.options import settings_from
from datapolicy.cli.serve import serve
from datapolicy.server import Service, build_app
from datapolicy.settings import Settings

ORIGIN = "http://testserver"  # the Host the requests name: the service's links start with it
CLIENT = ("127.0.0.1", 50000)  # the peer address the service sees, a loopback client's
STARTUP_TIMEOUT_S = 60  # opening the store and preparing the demo, on a busy machine


def serve_settings(*args: str) -> Settings:
    """The settings `datapolicy serve ARGS` runs with: parsed by its own options (and their
    environment variables), without setting up the logging of the test process."""
    params = dict(serve.make_context("serve", list(args)).params)
    return settings_from(params.pop("config_file"), **params)


class PortalTransport(httpx.BaseTransport):
    """A synchronous transport to an ASGI app running on `portal`'s event loop. Bodies are read
    whole both ways (a stalled or endless body needs a real connection)."""

    def __init__(self, portal: BlockingPortal, app: Service):
        self.app = app
        self._portal = portal
        self._asgi = httpx.ASGITransport(app=app, client=CLIENT)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()  # a ByteStream now, which the ASGI transport reads asynchronously
        status, headers, content, extensions = self._portal.call(self._send, request)
        return httpx.Response(
            status, headers=headers, stream=httpx.ByteStream(content), extensions=extensions
        )

    async def _send(self, request: httpx.Request) -> tuple[int, httpx.Headers, bytes, dict]:
        response = await self._asgi.handle_async_request(request)
        content = b"".join([chunk async for chunk in response.stream])  # raw: still encoded
        return response.status_code, response.headers, content, dict(response.extensions)


@contextmanager
def running(settings: Settings) -> Iterator[PortalTransport]:
    """The service for these settings, started (its lifespan) for the block: a transport to it.
    A failure to start raises here, as `serve` would exit with it."""
    app = build_app(settings)
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(lifespan(app)):
        yield PortalTransport(portal, app)


@asynccontextmanager
async def lifespan(app: Service) -> AsyncIterator[None]:
    """The app's lifespan events, sent as a server sends them (on the running loop)."""
    async with LifespanManager(
        app, startup_timeout=STARTUP_TIMEOUT_S, shutdown_timeout=STARTUP_TIMEOUT_S
    ):
        yield


def serve_in_process(data_dir: Path, *args: str) -> AbstractContextManager[PortalTransport]:
    """`running` for `datapolicy serve --data-dir DATA_DIR ARGS`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return running(serve_settings("--data-dir", str(data_dir), *args))
