"""A rolling restart loses no request: two `datapolicy serve --workers 0` processes on one
operation store (PostgreSQL under DATAPOLICY_TEST_STORE=postgresql, else one SQLite file in a
shared data directory) behind a load balancer that routes only to backends whose `/readyz`
answered 200 at its last probe (every PROBE_INTERVAL_S) and retries nothing. While clients send
GETs by id, lists and export starts through it, each backend in turn gets SIGTERM, exits, is
started again on its port and becomes ready. Every request must get its success status: the
drain (`[server] shutdown_drain_seconds`, server.py) keeps a backend serving until the load
balancer has seen its `/readyz` turn 503, so none meets a closed port.

The load balancer is an httpx transport written here: the routing that matters (health probes,
ready-only round robin, no retry, pooled keep-alive connections to the backends over loopback)
without a proxy's second hop. The size is `DATAPOLICY_ROLLING_REQUESTS` (default 2,000).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from conftest import service_database, store_args, token_for
from datapolicy.auth.permissions import PERMISSIONS
from datapolicy.demo import demo_user_id, prepare_demo
from datapolicy.store.audit import open_audit_log
from datapolicy.testing.server import start_serve, stop_process

REQUESTS = int(os.environ.get("DATAPOLICY_ROLLING_REQUESTS", "2000"))
PROBE_INTERVAL_S = 0.1
PROBE_TIMEOUT_S = 1.0
# Probes that must fail in a row to take a backend out of rotation, as load balancers count
# them (Kubernetes' failureThreshold is 3): one probe slow on a loaded machine takes none out.
# Three intervals are far inside the drain.
UNHEALTHY_THRESHOLD = 3
DRAIN_S = 2.0  # many probe intervals: the load balancer has long seen the 503 when it ends
CLIENTS = 8  # requests in flight at once
SEED_OPERATIONS = 20
LOAD_BETWEEN = 50  # requests each backend is sent before a restart and after the last
DEMO_USERS = 8
# e2e: API processes restarted behind a load balancer; the timeout is a hang guard (~35 s unloaded)
pytestmark = [
    pytest.mark.operation_store,
    pytest.mark.e2e,
    pytest.mark.chaos,
    pytest.mark.timeout(240),
]

CONFIG = """
[limits]
write_rate = 0  # one client sends thousands of export starts: no rate limit in the way
read_rate = 0
"""


@dataclass
class Backend:
    """One `datapolicy serve` on a fixed port, started again on that port after each stop."""

    data_dir: Path
    config: Path
    store: list[str]  # store_args: made once, before two threads start backends
    name: str
    port: int | None = None
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        self.process, self.port, _ = start_serve(
            self.data_dir,
            *("--workers", "0", "--demo", "--config", str(self.config)),
            *("--shutdown-drain-seconds", str(DRAIN_S)),
            *self.store,
            port=self.port,
            log=self.log,
        )

    @property
    def log(self) -> Path:
        return self.data_dir.parent / f"{self.name}-{self.starts}.log"

    def restart(self) -> None:
        """SIGTERM (what an orchestrator sends), a clean exit, then a start on the same port;
        returns once the new process answers `/readyz`."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=30) == 0, self.log.read_text()[-3000:]
        self.start()

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


@dataclass
class LoadBalancer(httpx.AsyncBaseTransport):
    """Routes each request round robin to a backend in rotation (its last `/readyz` probe
    answered 200, or fewer than UNHEALTHY_THRESHOLD have failed since), through pooled
    keep-alive connections; answers 503 itself when none is. It never retries: a request that
    meets a closed port raises, and the test counts it."""

    ports: list[int]
    ready: dict[int, asyncio.Event] = field(init=False)
    routed: asyncio.Condition = field(default_factory=asyncio.Condition)
    served: Counter[int] = field(default_factory=Counter)
    stopping: set[int] = field(default_factory=set)  # backends sent SIGTERM, not yet back
    sent_while_stopping: int = 0
    _backends: httpx.AsyncHTTPTransport = field(default_factory=httpx.AsyncHTTPTransport)
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.ready = {port: asyncio.Event() for port in self.ports}

    async def probe(self, port: int) -> None:
        """Every PROBE_INTERVAL_S: in rotation after a 200, out after UNHEALTHY_THRESHOLD
        answers in a row that are not."""
        failed = 0
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S) as prober:
            while True:
                try:
                    answer = await prober.get(f"http://127.0.0.1:{port}/readyz")
                    healthy = answer.status_code == 200
                except httpx.HTTPError:
                    healthy = False
                failed = 0 if healthy else failed + 1
                if healthy:
                    self.ready[port].set()
                elif failed >= UNHEALTHY_THRESHOLD:
                    self.ready[port].clear()
                await asyncio.sleep(PROBE_INTERVAL_S)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        ready = [port for port in self.ports if self.ready[port].is_set()]
        if not ready:
            # An answer without a wait: the clients' loop would never let the probes run.
            await asyncio.sleep(0)
            return httpx.Response(503, text="load balancer: no backend is ready")
        port = ready[next(self._turn) % len(ready)]
        async with self.routed:
            self.served[port] += 1
            self.sent_while_stopping += port in self.stopping
            self.routed.notify_all()
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=port)
        return await self._backends.handle_async_request(request)

    async def routed_more(self, count: int) -> None:
        """Until every backend has been sent `count` more requests than now."""
        async with self.routed:
            goal = {port: self.served[port] + count for port in self.ports}
            await self.routed.wait_for(
                lambda: all(self.served[port] >= goal[port] for port in self.ports)
            )

    async def aclose(self) -> None:
        await self._backends.aclose()


@pytest.fixture
def backends(tmp_path: Path) -> Iterator[list[Backend]]:
    data_dir = tmp_path / "data"
    prepare_demo(data_dir)  # made once here, not raced by the two processes
    config = tmp_path / "datapolicy.toml"
    config.write_text(CONFIG)
    store = store_args(data_dir)
    # The schema (and SQLite's audit file) made here first: two processes that first start
    # at once on a new SQLite data directory race to create it, and one fails.
    with service_database(data_dir) as database:
        database.migrate()
        open_audit_log(database).close()
    running = [Backend(data_dir, config, store, name) for name in ("a", "b")]
    try:
        with ThreadPoolExecutor(len(running)) as pool:  # at once: start-up is the slow part
            list(pool.map(Backend.start, running))
        yield running
    finally:
        for backend in running:  # drain all at once, then wait for each
            if backend.process is not None and backend.process.poll() is None:
                backend.process.send_signal(signal.SIGTERM)
        for backend in running:
            backend.stop()


async def test_a_rolling_restart_behind_a_load_balancer_loses_no_request(
    backends: list[Backend],
):
    rng = random.Random(20)
    data_dir = backends[0].data_dir
    balancer = LoadBalancer([backend.port for backend in backends if backend.port])
    probes = [asyncio.create_task(balancer.probe(port)) for port in balancer.ports]
    failures: list[str] = []
    outcomes: Counter[str] = Counter()
    client = httpx.AsyncClient(
        transport=balancer,
        base_url="http://balancer/v1.0",
        headers={"Authorization": f"Bearer {token_for(data_dir, *PERMISSIONS)}"},
        timeout=30,
    )
    exports = str(data_dir / "exports" / "rolling")
    ids: list[str] = []

    async def send(kind: str) -> None:
        user = demo_user_id(rng.randrange(DEMO_USERS))
        try:
            if kind == "export":
                response = await client.post(
                    f"/users/{user}/exportPersonalData", json={"storageLocation": exports}
                )
                expected = 202
                if response.status_code == expected:
                    ids.append(response.headers["location"].rsplit("/", 1)[1])
            elif kind == "list":
                response = await client.get("/dataPolicyOperations", params={"$top": "5"})
                expected = 200
            else:
                response = await client.get(f"/dataPolicyOperations/{rng.choice(ids)}")
                expected = 200
        except httpx.HTTPError as exc:
            failures.append(f"{kind}: {type(exc).__name__}: {exc}")
            return
        if response.status_code == expected:
            outcomes[kind] += 1
        else:
            failures.append(f"{kind}: {response.status_code} {response.text[:200]}")

    rolled = asyncio.Event()
    clients: list[asyncio.Task[None]] = []

    async def load() -> None:
        sent = 0
        while not (rolled.is_set() and sent >= REQUESTS // CLIENTS):
            await send(rng.choices(("get", "list", "export"), (60, 25, 15))[0])
            sent += 1

    try:
        for port in balancer.ports:
            await asyncio.wait_for(balancer.ready[port].wait(), 30)
        for _ in range(SEED_OPERATIONS):
            await send("export")
        assert ids, failures
        clients += [asyncio.create_task(load()) for _ in range(CLIENTS)]
        for backend in backends:
            await asyncio.wait_for(balancer.routed_more(LOAD_BETWEEN), 30)  # both under load
            assert backend.port is not None
            balancer.stopping.add(backend.port)
            signalled = time.monotonic()
            await asyncio.to_thread(backend.restart)
            await asyncio.wait_for(balancer.ready[backend.port].wait(), 30)
            balancer.stopping.remove(backend.port)
            back = time.monotonic() - signalled
            print(f"{backend.name}: back in rotation {back:.1f}s after its SIGTERM")
        await asyncio.wait_for(balancer.routed_more(LOAD_BETWEEN), 30)  # both restarted, at work
        rolled.set()
        await asyncio.gather(*clients)
    finally:
        for task in (*probes, *clients):
            task.cancel()
        await client.aclose()
    total = sum(outcomes.values()) + len(failures)
    print(
        f"rolling restart: {total} requests {dict(outcomes)}, {len(failures)} failed; "
        f"{balancer.sent_while_stopping} sent to a backend after its SIGTERM"
    )
    assert failures == [], failures[:10]
    assert total >= REQUESTS
