"""`/healthz` and `/readyz` at the server root: public, cheap, and 503 naming what is not ready
(without its paths or URLs) when the operation store or the exports directory fails, a storage
root is full (free space from an injected `statvfs`), or while
the process drains after SIGTERM (every other route still served until the drain is over)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.responses import PlainTextResponse

from conftest import TEST_STORE, Service, start_app, start_service, wait_for
from datapolicy.settings import DATABASE_FILE
from datapolicy.store import OperationStore, SQLiteDatabase
from datapolicy.web.middleware.pipeline import RequestPipeline
from datapolicy.web.routes.table import HEALTHZ, READYZ, Route, RouteTable
from datapolicy.web.server_root.health import HealthChecks, Readiness

pytestmark = pytest.mark.operation_store  # starts services on the test store


@pytest.fixture
def own_service(tmp_path: Path) -> Iterator[Service]:
    """A service of the test's own: the test breaks its store or its exports directory."""
    running = start_app(tmp_path / "data", "--workers", "0")
    yield running
    running.stop()


def test_both_answer_without_a_token_at_the_root_only(service: Service):
    root = service.root
    http = service.client(headers={})
    live = http.get(f"{root}/healthz")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert live.headers["cache-control"] == "no-store"
    ready = http.get(f"{root}/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    assert ready.headers["request-id"]
    assert http.head(f"{root}/readyz").status_code == 200
    post = http.post(f"{root}/healthz")
    assert (post.status_code, post.headers["allow"]) == (405, "GET, HEAD")
    assert post.json()["error"]["code"] == "MethodNotAllowed"
    # Not part of the Graph API: under the API root they are unknown paths, behind the token.
    assert http.get(f"{service.url}/healthz").status_code == 401
    assert "/healthz" not in http.get(f"{service.url}/openapi.json").text


def test_readyz_is_503_while_the_exports_directory_cannot_take_a_file(
    own_service: Service, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    root = own_service.root
    http = own_service.client(headers={})
    exports = own_service.data_dir / "exports"
    assert http.get(f"{root}/readyz").status_code == 200
    shutil.rmtree(exports)
    exports.write_text("a file where the directory should be")
    try:
        ready = http.get(f"{root}/readyz")
        assert ready.status_code == 503
        error = ready.json()["error"]
        assert error["code"] == "serviceNotAvailable"
        assert error["message"] == "The service is not ready: exports."
        assert error["details"] == [
            {
                "code": "notReady",
                "message": "The exports directory is not writable.",
                "target": "exports",
            }
        ]
        assert str(own_service.data_dir) not in ready.text
        assert error["innerError"]["request-id"] == ready.headers["request-id"]
        assert http.get(f"{root}/healthz").status_code == 200
    finally:
        exports.unlink()
    assert http.get(f"{root}/readyz").status_code == 200  # the directory is made again
    assert "not ready: exports" in caplog.text


@pytest.mark.skipif(TEST_STORE != "sqlite", reason="breaks the SQLite file in the data directory")
def test_readyz_is_503_while_the_store_is_gone_and_healthz_stays_200(
    own_service: Service, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    root = own_service.root
    http = own_service.client(headers={})
    store = own_service.data_dir / DATABASE_FILE
    moved = store.with_name("moved-away.sqlite3")
    store.rename(moved)
    try:
        ready = http.get(f"{root}/readyz")
        assert ready.status_code == 503
        error = ready.json()["error"]
        assert error["message"] == "The service is not ready: store."
        assert [detail["target"] for detail in error["details"]] == ["store"]
        assert DATABASE_FILE not in ready.text
        live = http.get(f"{root}/healthz")  # liveness touches no dependency
        assert (live.status_code, live.json()) == (200, {"status": "ok"})
    finally:
        moved.rename(store)
    assert http.get(f"{root}/readyz").status_code == 200
    log = caplog.text
    assert "not ready: store: OperationalError: unable to open database file" in log
    assert "ready again" in log


@pytest.mark.e2e  # signals to a `serve` process
def test_sigterm_turns_readyz_503_at_once_while_every_route_is_still_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The drain (from DATAPOLICY_SHUTDOWN_DRAIN_SECONDS): from the moment the first SIGTERM is
    handled, `/readyz` answers 503 `draining`, without a check; `/healthz`, reads and writes on
    new connections are answered as before, for as long as the drain lasts (here longer than the
    test); a second SIGTERM cuts it short and the process exits 0."""
    monkeypatch.setenv("DATAPOLICY_SHUTDOWN_DRAIN_SECONDS", "300")
    running = start_service(tmp_path / "data", "--workers", "0")
    try:
        root = running.root
        assert httpx.get(f"{root}/readyz").status_code == 200
        running.process.send_signal(signal.SIGTERM)
        wait_for("the drain", lambda: "draining for 300s" in running.log.read_text(), 15, str)
        ready = httpx.get(f"{root}/readyz")  # the first probe after the signal was handled
        assert ready.status_code == 503
        assert ready.headers["cache-control"] == "no-store"
        error = ready.json()["error"]
        assert error["code"] == "serviceNotAvailable"
        assert error["message"] == "The service is not ready: draining."
        assert [(d["code"], d["target"]) for d in error["details"]] == [("notReady", "draining")]
        assert httpx.head(f"{root}/readyz").status_code == 503
        assert httpx.get(f"{root}/healthz").status_code == 200
        with running.client() as api:  # a new connection: the listener is still open
            created = api.post("/dataPolicyOperations", json={"userId": "drain-user"})
            assert created.status_code == 201, created.text
            read = api.get(f"/dataPolicyOperations/{created.json()['id']}")
            assert read.status_code == 200, read.text
            assert api.get("/dataPolicyOperations", params={"$top": 1}).status_code == 200
        assert running.process.poll() is None
        signalled = time.monotonic()
        running.process.send_signal(signal.SIGTERM)  # a second signal: stop now
        assert running.process.wait(timeout=15) == 0
        assert time.monotonic() - signalled < 15
        assert "datapolicy stopped" in running.log.read_text()
    finally:
        running.stop()


@pytest.mark.e2e  # signals to a `serve` process
def test_after_the_drain_the_process_stops_by_itself(tmp_path: Path):
    """The drain's end (from --shutdown-drain-seconds): `/readyz` is 503 meanwhile, then the
    listener closes and the process exits 0, no sooner than the drain."""
    running = start_service(tmp_path / "data", "--workers", "0", "--shutdown-drain-seconds", "1")
    try:
        signalled = time.monotonic()
        running.process.send_signal(signal.SIGTERM)
        wait_for("the drain", lambda: "draining for 1s" in running.log.read_text(), 15, str)
        assert httpx.get(f"{running.root}/readyz").status_code == 503
        assert running.process.wait(timeout=15) == 0
        assert time.monotonic() - signalled >= 1
    finally:
        running.stop()


class Disks:
    """`os.statvfs` for the readiness check, with the free space of chosen paths made up:
    the check is tested without filling a disk."""

    def __init__(self, free: dict[Path, int]):
        self.free = free

    def __call__(self, path: Path) -> os.statvfs_result:
        real = os.statvfs(path)
        if path not in self.free:
            return real
        fields = list(real)
        fields[0], fields[1], fields[4] = (
            4096,
            4096,
            self.free[path] // 4096,
        )  # bsize, frsize, bavail
        return os.statvfs_result(fields)


async def test_readyz_is_503_naming_each_full_storage_root_by_its_place_not_its_path(
    tmp_path: Path,
):
    database = SQLiteDatabase(tmp_path / "store.sqlite3")  # the store is not what is tested
    database.migrate()
    exports, first, second = (tmp_path / name for name in ("exports", "first", "second"))
    for directory in (exports, first, second):
        directory.mkdir()
    disks = Disks({})
    readiness = Readiness(
        OperationStore(database),
        exports,
        roots=(first, second, exports),  # the exports directory is a root too: checked once
        min_free_bytes=1 << 20,
        statvfs=disks,
    )
    health = HealthChecks(readiness, threading.Event())
    probes = [Route(path, app=health, root=True) for path in (HEALTHZ, READYZ)]
    app = RequestPipeline(PlainTextResponse("served"), RouteTable(probes))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            assert (await http.get("/readyz")).status_code == 200
            disks.free = {second: 4096 * 255, exports: 0}  # under 1 MiB; nothing
            full = await http.get("/readyz")
            assert full.status_code == 503
            details = full.json()["error"]["details"]
            assert [(d["target"], d["message"]) for d in details] == [
                ("storage", "The exports directory is full."),
                ("storage", "Local storage root 2 of [storage.local] roots is full."),
            ]
            assert str(tmp_path) not in full.text
            disks.free = {second: 1 << 20}  # exactly the threshold: enough
            assert (await http.get("/readyz")).status_code == 200
            other = await http.get("/v1.0/dataPolicyOperations")
            assert other.text == "served"
    finally:
        database.close()
