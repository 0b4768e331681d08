"""Through a running service (on the suite's store): while another session holds the audit
trail's write lock (SQLite: a writer on the audit file; PostgreSQL: `SELECT ... FROM audit_head
FOR UPDATE`, the stand-in for a process frozen mid-append), a start and a DELETE answer 503
with Retry-After in Graph's error shape within about `[store] lock_timeout`, and change
nothing; polls (GET by id) keep answering; `/readyz` says the trail cannot take entries. Once
the lock is gone the same requests succeed and the trail verifies."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from conftest import Service, configured_app, current_store_url, service_database
from databases import holding_audit_lock
from datapolicy.auth.keys import audit_key
from datapolicy.demo import demo_user_id
from datapolicy.engine import EXPORTS_DIR
from datapolicy.settings import DATABASE_FILE
from datapolicy.store.audit import AuditAction, AuditFilter, open_audit_log

pytestmark = pytest.mark.operation_store  # starts services on the test store

ADA = demo_user_id(0)
LOCK_TIMEOUT = 1.0  # the service's [store] lock_timeout
PROMPTLY = LOCK_TIMEOUT + 4  # the lock timeout, and room for a shared, busy machine


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service without export workers (operations stay as the tests leave them)."""
    config = f"[store]\nlock_timeout = {LOCK_TIMEOUT}\n[audit]\nflush_seconds = 0.05\n"
    running = configured_app(
        tmp_path_factory.mktemp("fails-closed"), config, "--demo", "--workers", "0"
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def api(guarded: Service) -> Iterator[httpx.Client]:
    with guarded.client() as client:
        yield client


@contextmanager
def holding_the_audit_lock(service: Service) -> Iterator[None]:
    """Another session holds what every audit append of `service` must lock, until the block
    ends."""
    url = current_store_url(service.data_dir)
    audit_file = service.data_dir / DATABASE_FILE.replace(".sqlite3", "-audit.sqlite3")
    with holding_audit_lock(audit_file if url is None else url):
        yield


def assert_refused_promptly(response: httpx.Response, began: float) -> None:
    assert response.status_code == 503, response.text
    assert time.monotonic() - began < PROMPTLY
    assert int(response.headers["Retry-After"]) > 0
    error = response.json()["error"]
    assert error["code"] == "serviceNotAvailable"
    assert "audit trail" in error["message"]


def count(api: httpx.Client) -> int:
    response = api.get("/dataPolicyOperations/$count")
    assert response.status_code == 200
    return int(response.text)


def test_a_start_the_trail_cannot_record_is_refused_and_creates_nothing(api, guarded):
    before = count(api)
    exports = str((guarded.data_dir / EXPORTS_DIR).absolute())
    with holding_the_audit_lock(guarded):
        for path, body in (
            ("/dataPolicyOperations", {"userId": ADA}),
            (f"/users/{ADA}/exportPersonalData", {"storageLocation": exports}),
        ):
            began = time.monotonic()
            assert_refused_promptly(api.post(path, json=body), began)
        assert count(api) == before  # reads keep answering meanwhile
    assert count(api) == before
    assert api.post("/dataPolicyOperations", json={"userId": ADA}).status_code == 201
    assert count(api) == before + 1


def test_a_delete_the_trail_cannot_record_is_refused_and_deletes_nothing(api, guarded):
    created = api.post("/dataPolicyOperations", json={"userId": ADA})
    assert created.status_code == 201
    operation_id = created.json()["id"]
    with holding_the_audit_lock(guarded):
        began = time.monotonic()
        assert_refused_promptly(api.delete(f"/dataPolicyOperations/{operation_id}"), began)
        began = time.monotonic()
        polled = api.get(f"/dataPolicyOperations/{operation_id}")  # the poll still answers,
        assert polled.status_code == 200
        assert time.monotonic() - began < 2  # without waiting for the lock
    assert api.get(f"/dataPolicyOperations/{operation_id}").status_code == 200
    assert api.delete(f"/dataPolicyOperations/{operation_id}").status_code == 204
    assert api.get(f"/dataPolicyOperations/{operation_id}").status_code == 404
    with service_database(guarded.data_dir) as database:
        log = open_audit_log(database, signing_key=audit_key(guarded.data_dir))
        try:
            deleted = log.entries(
                AuditFilter(operation_id=operation_id, action=AuditAction.OPERATION_DELETED)
            )
            assert len(deleted) == 1
            result = log.verify()
            assert result.ok, result.problem
        finally:
            log.close()


def test_readyz_says_the_trail_cannot_take_entries(guarded):
    ready = f"{guarded.root}/readyz"
    with guarded.client(headers={}) as probe:
        assert probe.get(ready).status_code == 200
        with holding_the_audit_lock(guarded):
            response = probe.get(ready)
            assert response.status_code == 503, response.text
            targets = [detail["target"] for detail in response.json()["error"]["details"]]
            assert targets == ["audit"]
        assert probe.get(ready).status_code == 200
