"""Scale-out under chaos, on PostgreSQL: two API processes and three worker processes share one
operation store; exports are started through both APIs while workers are killed with SIGKILL
(and paused with SIGSTOP past their lease, then resumed) at random moments while they hold
exports, and restarted.

In the end every operation is complete, its directory holds exactly one package and no partial
file, the package verifies and names its operation, and no operation was completed twice:
a worker whose lease expired (killed, or paused and then woken) never published over the
worker that took the operation over.

The size is `DATAPOLICY_CHAOS_EXPORTS` (default 200, a couple of minutes on 2 cores) and the
chaos is seeded by `DATAPOLICY_CHAOS_SEED` (default: random, printed, so a failure can be
replayed). docs/deployment.md describes a longer soak run.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from conftest import Service, start_service, start_worker, stop_process, wait_for
from databases import POSTGRESQL, store_url
from datapolicy.demo import DEMO_DIR, demo_user_id, prepare_demo
from datapolicy.engine.verify import verify_package

EXPORTS = int(os.environ.get("DATAPOLICY_CHAOS_EXPORTS", "200"))
COMPLETION_TIMEOUT_S = max(120, EXPORTS)  # after the last start; generous for a loaded machine
pytestmark = [pytest.mark.chaos, pytest.mark.timeout(COMPLETION_TIMEOUT_S + 180)]
SEED = int(os.environ.get("DATAPOLICY_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
WORKER_PROCESSES = 3
LEASE_S = 1.5  # short, so that a killed worker's exports are taken over quickly
SLOW_SOURCE_S = 0.15  # each export waits this long in a source: exports are quick, not instant
START_RATE_PER_S = 25  # exports started per second, through both APIs
CHAOS_INTERVAL_S = (0.2, 1.0)  # between two acts of chaos
CHAOS_ACTS = max(9, EXPORTS // 20)  # at least (a third of them pauses)
PAUSE_S = (LEASE_S * 1.5, LEASE_S * 3)  # a SIGSTOPped worker sleeps past its lease
DEMO_USERS = 8
COMPLETED = re.compile(r"export ([0-9a-f-]{36}) complete")  # the worker's log line


def config_text(data_dir: Path, store: str) -> str:
    """The demo shop's directory and shop tables, plus a PostgreSQL query that takes a while."""
    shop = f"sqlite:///{(data_dir / DEMO_DIR / 'shop.sqlite3').absolute()}"
    return f"""
[store]
pool_min_size = 1
pool_max_size = 4
pool_timeout = 10

[engine]
workers = 2
lease_seconds = {LEASE_S}
heartbeat_seconds = {LEASE_S / 5}
poll_seconds = 0.1
max_attempts = 100
retry_backoff_seconds = 0
shutdown_grace_seconds = 0

[directory]
url = "{shop}"
table = "users"
display_name_column = "display_name"
mail_column = "mail"

[[sources.sql]]
name = "shop"
url = "{shop}"
tables = [
  {{ table = "users", user_key = "id", exclude = ["password_hash"] }},
  {{ table = "orders", user_key = "customer_id" }},
  {{ table = "order_items", parent = "orders" }},
]

[[sources.sql]]
name = "crm"
url = "{store}"
queries = [
  {{ name = "slow", sql = "SELECT :user_id AS user_id FROM pg_sleep({SLOW_SOURCE_S})" }},
]
"""


@dataclass
class Cluster:
    root: Path
    data_dir: Path
    config: Path
    store: str
    apis: list[Service] = field(default_factory=list)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    starts: list[int] = field(default_factory=list)

    def start_worker(self, index: int) -> None:
        process = start_worker(
            self.root / f"w{index}", self.data_dir, self.config, "--database", self.store
        )
        if index < len(self.workers):
            self.workers[index] = process
            self.starts[index] += 1
        else:
            self.workers.append(process)
            self.starts.append(1)

    def running(self, index: int) -> bool:
        """Whether worker `index`'s latest process is past its start-up and taking work (its
        log says so once per start): chaos is for workers at work, and a process killed while
        it starts tests nothing but the start."""
        log = (self.root / f"w{index}" / "worker.log").read_text()
        return log.count(" export threads") >= self.starts[index]

    def logs(self) -> str:
        return "\n".join(path.read_text() for path in sorted(self.root.glob("**/*.log")))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    data_dir = tmp_path / "data"
    prepare_demo(data_dir)  # made once here, not raced by five processes
    store = store_url(POSTGRESQL, data_dir)
    assert store is not None
    config = tmp_path / "datapolicy.toml"
    config.write_text(config_text(data_dir, store))
    running = Cluster(tmp_path, data_dir, config, store)
    args = ("--workers", "0", "--config", str(config), "--database", store)
    try:
        # The first API makes the signing key; the rest start on a data directory that has it.
        running.apis.append(start_service(data_dir, *args))
        running.apis.append(start_service(data_dir, *args))
        for index in range(WORKER_PROCESSES):
            (tmp_path / f"w{index}").mkdir()
            running.start_worker(index)
        for index in range(WORKER_PROCESSES):
            wait_for(f"worker {index}", lambda i=index: running.running(i), 60, running.logs)
        yield running
    finally:
        for process in running.workers:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
            stop_process(process)
        for api in running.apis:
            api.stop()


def test_killed_and_paused_workers_never_lose_or_double_an_export(cluster: Cluster):
    print(f"chaos: {EXPORTS} exports, seed {SEED} (DATAPOLICY_CHAOS_SEED={SEED} replays it)")
    rng = random.Random(SEED)
    exports = cluster.data_dir / "exports" / "chaos"
    clients = [api.client() for api in cluster.apis]
    started = time.monotonic()

    def start(number: int) -> str:
        """Start export `number` at its time (paced, so that chaos meets exports in progress)."""
        time.sleep(max(0.0, started + number / START_RATE_PER_S - time.monotonic()))
        response = clients[number % 2].post(
            f"/users/{demo_user_id(number % DEMO_USERS)}/exportPersonalData",
            json={"storageLocation": str(exports)},
        )
        assert response.status_code == 202, response.text
        return response.headers["location"].rsplit("/", 1)[1]

    kills = pauses = 0

    def all_complete() -> bool:
        with cluster.apis[0].client() as api:
            response = api.get(
                "/dataPolicyOperations/$count", params={"$filter": "status ne 'complete'"}
            )
        return response.status_code == 200 and response.text == "0"

    kills = pauses = 0
    store = create_engine(cluster.store, poolclass=NullPool)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(start, number) for number in range(EXPORTS)]
        # Chaos while the starts go out, and on until it has done its share (while there is
        # work left to disturb): each act picks a worker at work and kills it (then starts it
        # again), or, every third act, pauses it past its lease (then wakes it).
        chaos_until = started + EXPORTS / START_RATE_PER_S
        chaos_at = started
        while time.monotonic() < chaos_until or kills + pauses < CHAOS_ACTS:
            chaos_at = max(chaos_at, time.monotonic()) + rng.uniform(*CHAOS_INTERVAL_S)
            time.sleep(max(0.0, chaos_at - time.monotonic()))
            if futures[-1].done() and all_complete():
                break
            leased = lease_holders(store)  # chaos strikes workers in the middle of an export
            working = [
                i
                for i in range(WORKER_PROCESSES)
                if cluster.workers[i].pid in leased and cluster.running(i)
            ]
            if not working:
                continue
            index = rng.choice(working)
            victim = cluster.workers[index]
            if (kills + pauses) % 3 == 2:
                victim.send_signal(signal.SIGSTOP)
                time.sleep(rng.uniform(*PAUSE_S))
                victim.send_signal(signal.SIGCONT)
                pauses += 1
            else:
                victim.kill()
                victim.wait()
                cluster.start_worker(index)
                kills += 1
        ids = [future.result() for future in futures]
    store.dispose()
    assert len(set(ids)) == EXPORTS

    wait_for("every export to complete", all_complete, COMPLETION_TIMEOUT_S, cluster.logs)
    elapsed = time.monotonic() - started
    for client in clients:
        client.close()

    # Exactly one package per operation, no partial files left, each verifying as its own.
    names = sorted(path.name for path in exports.iterdir())
    assert names == sorted(f"{operation_id}.zip" for operation_id in ids)
    for operation_id in ids:
        package = exports / f"{operation_id}.zip"
        assert verify_package(package) == [], operation_id
        assert manifest_of(package)["operationId"] == operation_id

    # No operation was ever completed twice: each worker logs its completions, and a worker
    # whose lease was taken over cannot complete (store/queue.py `complete`).
    completions = Counter(COMPLETED.findall(cluster.logs()))
    assert completions, "no completion was logged"
    assert max(completions.values()) == 1, completions.most_common(3)

    attempts = attempts_by_operation(cluster.store)
    assert sorted(attempts) == sorted(ids)
    taken_over = sum(1 for count in attempts.values() if count > 1)
    print(
        f"chaos: {EXPORTS} exports complete in {elapsed:.1f}s, {kills} workers killed, "
        f"{pauses} paused past their lease, {taken_over} exports taken over by another worker"
    )
    assert kills + pauses > 0


def manifest_of(package: Path) -> dict[str, object]:
    with zipfile.ZipFile(package) as archive:
        return orjson.loads(archive.read("manifest.json"))


def lease_holders(store: Engine) -> set[int]:
    """The process ids of the workers holding a lease now (a lease owner is
    `host:pid:instance:thread`, engine/worker.py)."""
    with store.connect() as connection:
        owners = connection.execute(
            text("SELECT DISTINCT lease_owner FROM operations WHERE lease_owner IS NOT NULL")
        ).scalars()
        return {int(owner.split(":")[-3]) for owner in owners}


def attempts_by_operation(url: str) -> dict[str, int]:
    """How many times each operation was claimed, from the store itself."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id, attempts FROM operations")).all()
    finally:
        engine.dispose()
    return {row[0]: row[1] for row in rows}
