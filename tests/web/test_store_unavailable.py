"""A PostgreSQL operation store that stops answering: API requests get 503 with Graph's error body
and Retry-After (never a 500), /readyz says not ready, /healthz stays up, and all of it recovers
by itself when the database is back.

The shared PostgreSQL server is never stopped: the service reaches it through a TCP forwarder
of the test's own, which the test closes (refusing new connections and cutting the open ones)
and reopens on the same port.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from conftest import Service, start_service, wait_for
from databases import POSTGRESQL, scratch_database, store_server
from datapolicy.web.errors import RETRY_AFTER_S

# How long a request waits for a pooled connection before answering 503 (`[store]
# pool_timeout`): short, so the test is too.
POOL_TIMEOUT_S = 1
# The pool reconnects with exponential backoff (bounded: store/database.py).
RECOVERY_TIMEOUT_S = 30


class TcpForwarder:
    """Forwards a loopback port to `target`, on an event loop in a thread of its own, until
    `close()` (which also cuts every forwarded connection); `open()` listens again on the same
    port."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def _run(self, coroutine):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    def open(self) -> None:
        self._run(self._open())

    def close(self) -> None:
        self._run(self._close())

    def shut_down(self) -> None:
        self.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, upstream_writer}
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()
            self._writers.discard(writer)


@pytest.fixture
def forwarded_service(tmp_path: Path) -> Iterator[tuple[Service, TcpForwarder]]:
    """A service whose PostgreSQL store is reached through a forwarder the test controls."""
    server = store_server(POSTGRESQL)
    assert server is not None
    with scratch_database(POSTGRESQL, tmp_path, within=server) as url:
        real = make_url(url)
        forwarder = TcpForwarder(real.host or "127.0.0.1", real.port or 5432)
        forwarder.open()
        config = tmp_path / "datapolicy.toml"
        config.write_text(f"[store]\npool_min_size = 1\npool_timeout = {POOL_TIMEOUT_S}\n")
        forwarded = real.set(host="127.0.0.1", port=forwarder.port)
        service = start_service(
            tmp_path / "data",
            "--workers",
            "0",
            "--config",
            str(config),
            "--database",
            forwarded.render_as_string(hide_password=False),
        )
        try:
            yield service, forwarder
        finally:
            service.stop()
            forwarder.shut_down()


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == str(RETRY_AFTER_S)
    error = response.json()["error"]
    assert error["code"] == "serviceNotAvailable"
    assert error["message"] == "The operation store is not answering. Try again later."
    assert error["innerError"]["request-id"] == response.headers["request-id"]


def test_an_unreachable_store_is_503_with_retry_after_until_it_returns(
    forwarded_service: tuple[Service, TcpForwarder],
):
    service, forwarder = forwarded_service
    root = service.url.removesuffix("/v1.0")
    with service.client() as api:
        created = api.post("/dataPolicyOperations", json={"userId": "outage"})
        assert created.status_code == 201, created.text
        operation = f"/dataPolicyOperations/{created.json()['id']}"
        assert api.get(operation).status_code == 200

        forwarder.close()
        assert_unavailable(api.get(operation))  # the fast path
        assert_unavailable(api.get(operation, params={"$select": "status"}))  # the routed path
        assert_unavailable(api.get("/dataPolicyOperations"))
        assert_unavailable(api.get("/dataPolicyOperations/$count"))
        assert_unavailable(api.post("/dataPolicyOperations", json={"userId": "outage"}))
        assert_unavailable(api.patch(operation, json={"storageLocation": "/elsewhere"}))
        assert_unavailable(api.delete(operation))
        ready = httpx.get(f"{root}/readyz", timeout=30)
        assert ready.status_code == 503
        assert [d["target"] for d in ready.json()["error"]["details"]] == ["store"]
        assert httpx.get(f"{root}/healthz").status_code == 200

        forwarder.open()
        back = time.monotonic()
        wait_for(
            "readiness after the store returned",
            lambda: httpx.get(f"{root}/readyz", timeout=30).status_code == 200,
            RECOVERY_TIMEOUT_S,
            service.log.read_text,
        )
        print(f"ready {time.monotonic() - back:.1f}s after the store returned")
        assert api.get(operation).status_code == 200
        assert api.get("/dataPolicyOperations").status_code == 200
    assert "operation store unavailable" in service.log.read_text()
