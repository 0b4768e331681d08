"""A PostgreSQL operation store that stops answering: API requests get 503 with Graph's error body
and Retry-After (never a 500), /readyz says not ready, /healthz stays up, and all of it recovers
by itself when the database is back.

The shared PostgreSQL server is never stopped: the service reaches it through a TCP forwarder
of the test's own, which the test closes (refusing new connections and cutting the open ones)
and reopens on the same port.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from conftest import Service, start_app, wait_for
from databases import POSTGRESQL, scratch_database, store_server
from datapolicy.web.errors import RETRY_AFTER_S
from forwarder import TcpForwarder

pytestmark = pytest.mark.operation_store  # starts services on the test store

# How long a request waits for a pooled connection before answering 503 (`[store]
# pool_timeout`): short, so the test is too.
POOL_TIMEOUT_S = 1
# The pool reconnects with exponential backoff (bounded: store/database.py).
RECOVERY_TIMEOUT_S = 30


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
        service = start_app(
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
    forwarded_service: tuple[Service, TcpForwarder], caplog: pytest.LogCaptureFixture
):
    service, forwarder = forwarded_service
    root = service.root
    with service.client() as api, service.client(headers={}) as probe:
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
        ready = probe.get(f"{root}/readyz")
        assert ready.status_code == 503
        assert [d["target"] for d in ready.json()["error"]["details"]] == ["store"]
        assert probe.get(f"{root}/healthz").status_code == 200

        forwarder.open()
        back = time.monotonic()
        wait_for(
            "readiness after the store returned",
            lambda: probe.get(f"{root}/readyz").status_code == 200,
            RECOVERY_TIMEOUT_S,
            lambda: caplog.text,
        )
        print(f"ready {time.monotonic() - back:.1f}s after the store returned")
        assert api.get(operation).status_code == 200
        assert api.get("/dataPolicyOperations").status_code == 200
    assert "operation store unavailable" in caplog.text
