"""A scaled-out deployment on one PostgreSQL operation store, for the chaos test
(tests/test_chaos.py) and the soak (bench/soak.py): `datapolicy serve --workers 0` processes
and `datapolicy worker` processes on one data directory with the demo shop, a short lease so
that a killed or frozen worker's exports are taken over quickly, and what both read back
afterwards (lease holders, attempts, each package's manifest, the workers' completions)."""

from __future__ import annotations

import re
import signal
import subprocess
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from sqlalchemy import Engine, create_engine, text

from conftest import Service, start_service, start_worker, stop_process, wait_for
from datapolicy.demo import DEMO_DIR

LEASE_S = 1.5  # short, so that a killed worker's exports are taken over quickly
COMPLETED = re.compile(r"export ([0-9a-f-]{36}) complete")  # the worker's log line
WORKER_START_TIMEOUT_S = 60


def shop_config(data_dir: Path, workers: int, max_worker_losses: int = 10) -> str:
    """The demo shop's directory and tables, and a short lease, so that a killed or frozen
    worker's exports are taken over quickly."""
    shop = f"sqlite:///{(data_dir / DEMO_DIR / 'shop.sqlite3').absolute()}"
    return f"""
[engine]
workers = {workers}
lease_seconds = {LEASE_S}
heartbeat_seconds = {LEASE_S / 5}
poll_seconds = 0.1
max_attempts = 3
max_worker_losses = {max_worker_losses}
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
"""


def cluster_config(
    data_dir: Path,
    slow_source: str,
    slow_source_s: float,
    max_worker_losses: int,
    pool_timeout_s: float = 10,
) -> str:
    """The shop (`shop_config`) on a small store pool, two export threads per worker, plus a
    PostgreSQL query at `slow_source` that takes `slow_source_s`: exports are quick, not
    instant, so chaos meets them in progress."""
    return f"""
[store]
pool_min_size = 1
pool_max_size = 4
pool_timeout = {pool_timeout_s}
{shop_config(data_dir, workers=2, max_worker_losses=max_worker_losses)}
[[sources.sql]]
name = "crm"
url = "{slow_source}"
queries = [
  {{ name = "slow", sql = "SELECT :user_id AS user_id FROM pg_sleep({slow_source_s})" }},
]
"""


@dataclass
class Cluster:
    """API processes and worker processes on one data directory and one store (`store`, the
    `--database` every process gets); worker `index` logs to `root/w<index>/worker.log`."""

    root: Path
    data_dir: Path
    config: Path
    store: str
    apis: list[Service] = field(default_factory=list)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # Where each worker's latest process began writing to its log.
    log_offsets: list[int] = field(default_factory=list)

    def start_worker(self, index: int) -> None:
        """Start worker `index` (again, after it was killed or exited)."""
        log = self.root / f"w{index}" / "worker.log"
        log.parent.mkdir(exist_ok=True)
        offset = log.stat().st_size if log.exists() else 0
        process = start_worker(
            log.parent, self.data_dir, self.config, "--database", self.store, own_store=True
        )
        if index < len(self.workers):
            self.workers[index] = process
            self.log_offsets[index] = offset
        else:
            self.workers.append(process)
            self.log_offsets.append(offset)

    def running(self, index: int) -> bool:
        """Whether worker `index`'s latest process is past its start-up and taking work (its
        log says so once per start; a start that failed says nothing): chaos is for workers at
        work, and a process killed while it starts tests nothing but the start."""
        with (self.root / f"w{index}" / "worker.log").open("rb") as log:
            log.seek(self.log_offsets[index])
            return b" export threads" in log.read()

    def logs(self) -> str:
        return "\n".join(path.read_text() for path in sorted(self.root.glob("**/*.log")))

    def worker_logs(self) -> str:
        return "\n".join(path.read_text() for path in sorted(self.root.glob("w*/worker.log")))


@contextmanager
def running_cluster(
    root: Path, data_dir: Path, config: Path, store: str, api_processes: int, workers: int
) -> Iterator[Cluster]:
    """`api_processes` API processes and `workers` worker processes on `store`, the workers
    taking work; every process stopped on the way out (a paused one resumed first)."""
    cluster = Cluster(root, data_dir, config, store)
    args = ("--workers", "0", "--config", str(config), "--database", store)
    try:
        # The first API makes the signing key and migrates the store; the rest start on a data
        # directory and a store that have them.
        for _ in range(api_processes):
            cluster.apis.append(start_service(data_dir, *args, own_store=True))
        for index in range(workers):
            cluster.start_worker(index)
        for index in range(workers):
            wait_for(
                f"worker {index}",
                lambda i=index: cluster.running(i),
                WORKER_START_TIMEOUT_S,
                cluster.logs,
            )
        yield cluster
    finally:
        for process in cluster.workers:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
            stop_process(process)
        for api in cluster.apis:
            api.stop()


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
