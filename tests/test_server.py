"""server.py's `Drain`, on a clock the test holds: `/readyz` turns 503 the moment the drain
begins while other routes still answer, the listener is closed (`then`) only when the drain's
sleep returns, never twice, and at once on a second signal; and `Settings.drain_seconds` picks
the drain's length."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
import pytest
from starlette.responses import PlainTextResponse

from datapolicy.config import ConfigError
from datapolicy.server import Drain
from datapolicy.settings import DEFAULT_DRAIN_SECONDS, Settings
from datapolicy.store import OperationStore
from datapolicy.store.database import SQLiteDatabase
from datapolicy.web.middleware.pipeline import RequestPipeline
from datapolicy.web.routes.table import HEALTHZ, READYZ, Route, RouteTable
from datapolicy.web.server_root.health import HealthChecks, Readiness


class HeldClock:
    """A `sleep` that returns only when the test says the time has passed."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self.passed = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.asked.append(seconds)
        await self.passed.wait()


async def settle() -> None:
    """Let every task that can run, run."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_draining_is_set_at_once_and_the_listener_closes_when_the_drain_is_over():
    clock, draining, closed = HeldClock(), threading.Event(), []
    drain = Drain(7, draining, lambda: closed.append("closed"), sleep=clock.sleep)
    drain.begin()
    assert draining.is_set()  # before the loop has run anything else: /readyz is 503 now
    await settle()
    assert (clock.asked, closed) == ([7], [])  # serving on while the clock has not moved
    clock.passed.set()
    await settle()
    assert closed == ["closed"]
    drain.end_now()  # a second signal after the drain: nothing left to cut short
    assert closed == ["closed"]


async def test_readyz_is_503_from_the_first_signal_while_other_routes_answer_through_the_drain(
    tmp_path: Path,
):
    database = SQLiteDatabase(tmp_path / "store.sqlite3")
    database.migrate()
    clock, draining, closed = HeldClock(), threading.Event(), []
    readiness = Readiness(OperationStore(database), tmp_path / "exports")
    health = HealthChecks(readiness, draining)
    probes = [Route(path, app=health, root=True) for path in (HEALTHZ, READYZ)]
    app = RequestPipeline(PlainTextResponse("served"), RouteTable(probes))
    drain = Drain(5, draining, lambda: closed.append("closed"), sleep=clock.sleep)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            assert (await http.get("/readyz")).status_code == 200
            drain.begin()  # what the first SIGTERM calls
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert [d["target"] for d in ready.json()["error"]["details"]] == ["draining"]
            other = await http.get("/v1.0/dataPolicyOperations")
            assert (other.status_code, other.text) == (200, "served")
            assert (await http.get("/healthz")).status_code == 200
            await settle()
            assert (clock.asked, closed) == ([5], [])  # still serving: the drain is not over
            clock.passed.set()
            await settle()
            assert closed == ["closed"]
            assert (await http.get("/readyz")).status_code == 503  # and so it stays
    finally:
        database.close()


async def test_a_second_signal_closes_the_listener_at_once_and_only_once():
    clock, draining, closed = HeldClock(), threading.Event(), []
    drain = Drain(60, draining, lambda: closed.append("closed"), sleep=clock.sleep)
    drain.begin()
    await settle()
    drain.end_now()
    assert closed == ["closed"]
    clock.passed.set()  # the cancelled sleep must not close it again
    await settle()
    assert closed == ["closed"]


async def test_a_zero_drain_closes_the_listener_within_the_signal_handler():
    clock, draining, closed = HeldClock(), threading.Event(), []
    Drain(0, draining, lambda: closed.append("closed"), sleep=clock.sleep).begin()
    assert draining.is_set()
    assert (clock.asked, closed) == ([], ["closed"])


@pytest.mark.parametrize(
    ("settings", "seconds"),
    [
        (Settings(), DEFAULT_DRAIN_SECONDS),
        (Settings(demo=True), 0),  # the demo runs behind no load balancer
        (Settings(demo=True, shutdown_drain_seconds=2.5), 2.5),  # asked for: even in the demo
        (Settings(shutdown_drain_seconds=0), 0),
    ],
)
def test_the_drain_lasts_the_configured_time_five_seconds_by_default_none_in_the_demo(
    settings: Settings, seconds: float
):
    assert settings.drain_seconds == seconds


def test_the_drain_comes_from_the_server_table_of_the_configuration_file(tmp_path: Path):
    path = tmp_path / "datapolicy.toml"
    path.write_text("[server]\nshutdown_drain_seconds = 12.5\n")
    assert Settings().with_file(path).drain_seconds == 12.5
    assert Settings(demo=True).with_file(path).drain_seconds == 12.5
    path.write_text("[server]\nshutdown_drain_seconds = -1\n")
    with pytest.raises(ConfigError, match="shutdown_drain_seconds"):
        Settings().with_file(path)
