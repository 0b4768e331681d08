"""server.py `build_app`: the whole service as one ASGI app whose lifespan opens and closes it,
run in process as any ASGI server runs it (asgi-lifespan's `LifespanManager` sends the lifespan
events, httpx's `ASGITransport` the requests). Pinned: nothing is served before startup; startup
opens the store and starts the export threads (an export can be started and read back); shutdown
stops the threads, appends the audit entries still in the buffer (the flush interval here is
longer than the test) and closes the store."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from conftest import current_store_url, token_for
from datapolicy.auth.keys import audit_key
from datapolicy.auth.permissions import EXPORT
from datapolicy.demo import demo_user_id
from datapolicy.server import build_app
from datapolicy.settings import Settings
from datapolicy.store import open_database
from datapolicy.store.audit import AuditAction, AuditFilter, open_audit_log

pytestmark = pytest.mark.operation_store  # starts services on the test store

ADA = demo_user_id(0)


def settings_for(data_dir: Path) -> Settings:
    """The demo on the test store, one export thread, and an audit flush that never comes on
    its own during a test."""
    settings = Settings(
        data_dir=data_dir, demo=True, database=current_store_url(data_dir)
    ).with_overrides(workers=1)
    audit = settings.config.audit.model_copy(update={"flush_seconds": 60})
    return replace(settings, config=settings.config.model_copy(update={"audit": audit}))


def export_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("export-")]


async def test_nothing_is_served_before_the_lifespan_has_started(tmp_path: Path):
    app = build_app(settings_for(tmp_path / "data"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        with pytest.raises(RuntimeError, match="lifespan must run first"):
            await http.get("/healthz")
    assert app.running is None


async def test_the_lifespan_opens_the_service_and_its_end_stops_threads_and_flushes_the_audit(
    tmp_path: Path,
):
    data_dir = tmp_path / "data"
    settings = settings_for(data_dir)
    app = build_app(settings)
    before = set(export_threads())
    async with LifespanManager(app) as manager:
        running = app.running
        assert running is not None
        started = set(export_threads()) - before
        assert len(started) == 1
        assert all(thread.is_alive() for thread in started)
        transport = httpx.ASGITransport(app=manager.app)
        headers = {"authorization": f"Bearer {token_for(data_dir, EXPORT)}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=headers
        ) as http:
            assert (await http.get("/readyz")).status_code == 200  # the store is open
            created = await http.post("/v1.0/dataPolicyOperations", json={"userId": ADA})
            assert created.status_code == 201, created.text
            operation_id = created.json()["id"]
            read = await http.get(f"/v1.0/dataPolicyOperations/{operation_id}")  # fast path
            assert read.status_code == 200
    assert app.running is None
    assert not any(thread.is_alive() for thread in started)

    database = open_database(settings.database_url)
    try:
        audit = open_audit_log(database, signing_key=audit_key(data_dir))
        try:
            reads = audit.entries(
                AuditFilter(action=AuditAction.OPERATION_READ, operation_id=operation_id)
            )
        finally:
            audit.close()
    finally:
        database.close()
    assert len(reads) == 1  # buffered for 60 s, appended when the lifespan ended
