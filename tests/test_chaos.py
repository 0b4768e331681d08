"""Scale-out under chaos, on PostgreSQL: two API processes and three worker processes share one
operation store; exports are started through both APIs while workers are killed with SIGKILL
(and paused with SIGSTOP past their lease, then resumed) at random moments while they hold
exports, and restarted.

In the end every operation is complete (worker deaths are not the exports' failures: three
attempts are allowed for those, and many more losses), its directory holds exactly one package
and, once the sweep has run, no partial file, the package verifies and names its operation,
and no operation was completed twice: a worker whose lease expired (killed, or paused and then
woken) never published over the worker that took the operation over.

Before the random chaos, the same guarantee step by step, on the test store (SQLite or
PostgreSQL, DATAPOLICY_TEST_STORE): a worker frozen (SIGSTOP) past its lease at each step of an
export (claim, begin, mid-write, finish, publish) and then resumed while its successor is about
to publish never publishes, removes nothing of its successor's, and leaves nothing behind.

The random chaos runs on PostgreSQL whatever the test store (its processes are given the store
with `--database`, `own_store`), so it would run exactly the same in the PostgreSQL pass: only
the SQLite pass runs it (tests/conftest.py, `on_test_store`). The step-by-step test runs in both.

The size is `DATAPOLICY_CHAOS_EXPORTS` (default 200, a couple of minutes on 2 cores) and the
chaos is seeded by `DATAPOLICY_CHAOS_SEED` (default: random, printed, so a failure can be
replayed). docs/deployment.md describes a longer soak run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.pool import NullPool

from cluster import (
    COMPLETED,
    LEASE_S,
    Cluster,
    attempts_by_operation,
    cluster_config,
    lease_holders,
    manifest_of,
    running_cluster,
    shop_config,
)
from conftest import (
    service_database,
    start_service,
    stepped_command,
    stop_process,
    store_args,
    wait_for,
)
from databases import POSTGRESQL, store_url
from datapolicy.demo import demo_user_id, prepare_demo
from datapolicy.engine.verify import verify_package
from datapolicy.store.tables import operations

EXPORTS = int(os.environ.get("DATAPOLICY_CHAOS_EXPORTS", "200"))
COMPLETION_TIMEOUT_S = max(120, EXPORTS)  # after the last start; generous for a loaded machine
pytestmark = [
    pytest.mark.e2e,  # API and worker processes, killed and paused
    pytest.mark.chaos,
    pytest.mark.timeout(COMPLETION_TIMEOUT_S + 180),
]
SEED = int(os.environ.get("DATAPOLICY_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
WORKER_PROCESSES = 3
SLOW_SOURCE_S = 0.15  # each export waits this long in a source: exports are quick, not instant
START_RATE_PER_S = 25  # exports started per second, through both APIs
CHAOS_INTERVAL_S = (0.2, 1.0)  # between two acts of chaos
CHAOS_ACTS = max(9, EXPORTS // 20)  # at least (a third of them pauses)
PAUSE_S = (LEASE_S * 1.5, LEASE_S * 3)  # a SIGSTOPped worker sleeps past its lease
DEMO_USERS = 8
MAX_WORKER_LOSSES = 100  # kills here are many, and are not the exports' failures


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    data_dir = tmp_path / "data"
    prepare_demo(data_dir)  # made once here, not raced by five processes
    store = store_url(POSTGRESQL, data_dir)
    assert store is not None
    config = tmp_path / "datapolicy.toml"
    config.write_text(
        cluster_config(data_dir, store, SLOW_SOURCE_S, max_worker_losses=MAX_WORKER_LOSSES)
    )
    with running_cluster(tmp_path, data_dir, config, store, 2, WORKER_PROCESSES) as running:
        yield running


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

    # Exactly one package per operation, each verifying as its own; the partial files that
    # killed workers left are swept (once older than the lease, by an idle worker).
    packages = sorted(f"{operation_id}.zip" for operation_id in ids)
    wait_for(
        "the exports directory to hold exactly the packages",
        lambda: sorted(path.name for path in exports.iterdir()) == packages,
        LEASE_S * 10,
        lambda: "\n".join(sorted(path.name for path in exports.iterdir())),
    )
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


STEPS = ("claim", "begin", "write", "finish", "publish")
STEP_TIMEOUT_S = 60
LEASE_LOST = "stopped: its lease expired and another worker took it over"


def stepped_worker(root: Path, data_dir: Path, config: Path, **steps: str) -> subprocess.Popen:
    """A `datapolicy worker` on the test store steered by files in `root`
    (tests/steppedworker.py), named after `root`, logging to `root/worker.log`."""
    root.mkdir()
    command, environment = stepped_command(
        root,
        *("worker", "--data-dir", str(data_dir), "--config", str(config)),
        *store_args(data_dir),
        **steps,
    )
    with (root / "worker.log").open("ab") as output:
        return subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
        )


def frozen(process: subprocess.Popen) -> bool:
    """Whether the process is stopped (SIGSTOP), from /proc."""
    state = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state == "T"


def write_plan(root: Path, plan: dict[str, str]) -> None:
    """The operations a stepped worker may claim, with the step of each (written whole)."""
    (root / "plan.tmp").write_bytes(orjson.dumps(plan))
    (root / "plan.tmp").rename(root / "plan.json")


@pytest.mark.operation_store  # starts a service and workers on the test store
def test_a_worker_frozen_past_its_lease_at_any_step_never_publishes_nor_spoils(tmp_path: Path):
    """One export per step of an export (claim, begin, first write, finish, publish): the victim
    claims them all, stands each at its step and freezes (SIGSTOP) past the lease; the
    successor takes every one over, writes its package and holds just before finishing it; the
    victim is resumed and goes as far as it can (to just before completing, where it is held,
    unless its heartbeat stops it first: it has no lease). Then the successor finishes and
    publishes, and the victim is let go.

    Each package published is the successor's, whole, from its first attempt (issue 20: a
    victim frozen between claim and begin replaced the successor's partial file, which the
    successor then published); the victim stopped each export on its lost lease and completed
    none; the exports directory holds exactly the packages. On the test store (SQLite or
    PostgreSQL)."""
    data_dir = tmp_path / "data"
    prepare_demo(data_dir)
    config = tmp_path / "datapolicy.toml"
    config.write_text(shop_config(data_dir, workers=len(STEPS)))
    exports = data_dir / "exports" / "frozen"
    api = start_service(data_dir, "--workers", "0", "--config", str(config))
    victim = stepped_worker(tmp_path / "victim", data_dir, config, freeze="1", hold="publish")
    successor = stepped_worker(tmp_path / "successor", data_dir, config, hold="finish")
    victim_log = tmp_path / "victim" / "worker.log"

    def logs() -> str:
        return "\n".join(
            f"--- {path.parent.name} ---\n{path.read_text()[-3000:]}"
            for path in sorted(tmp_path.glob("*/*.log"))
        )

    def all_there(name: str) -> bool:
        return all((tmp_path / name).exists() for name in (name.format(i) for i in ids))

    try:
        with api.client() as client:
            ids = []
            for number in range(len(STEPS)):
                response = client.post(
                    f"/users/{demo_user_id(number)}/exportPersonalData",
                    json={"storageLocation": str(exports)},
                )
                assert response.status_code == 202, response.text
                ids.append(response.headers["location"].rsplit("/", 1)[1])
            plan = dict(zip(ids, STEPS, strict=True))
            write_plan(tmp_path / "victim", plan)
            wait_for(
                "the victim to freeze with each export at its step",
                lambda: (tmp_path / "victim" / "stopping").exists() and frozen(victim),
                STEP_TIMEOUT_S,
                logs,
            )
            assert {i: (tmp_path / "victim" / f"at-{i}").read_text() for i in ids} == plan
            write_plan(tmp_path / "successor", plan)
            wait_for(
                "the successor to take every export over and write its package",
                lambda: all_there("successor/holding-{}"),
                STEP_TIMEOUT_S,
                logs,
            )
            victim.send_signal(signal.SIGCONT)
            wait_for(
                "the victim to go as far as it can",
                lambda: all(
                    (tmp_path / "victim" / f"holding-{i}").exists()
                    or f"export {i} {LEASE_LOST}" in victim_log.read_text()
                    for i in ids
                ),
                STEP_TIMEOUT_S,
                logs,
            )
            (tmp_path / "successor" / "go").touch()

            def statuses() -> set[str]:
                return {client.get(f"/dataPolicyOperations/{i}").json()["status"] for i in ids}

            wait_for("every export to complete", lambda: statuses() == {"complete"}, 60, logs)
            (tmp_path / "victim" / "go").touch()
            wait_for(
                "the victim to stop every export on its lost lease",
                lambda: all(f"export {i} {LEASE_LOST}" in victim_log.read_text() for i in ids),
                STEP_TIMEOUT_S,
                logs,
            )
    finally:
        if victim.poll() is None:
            victim.send_signal(signal.SIGCONT)
        for process in (victim, successor):
            process.terminate()
        for process in (victim, successor):
            stop_process(process)
        api.stop()

    assert sorted(path.name for path in exports.iterdir()) == sorted(f"{i}.zip" for i in ids)
    with service_database(data_dir) as database:
        rows = database.fetch_all(
            select(operations.c.id, operations.c.attempts, operations.c.worker_losses)
        )
    for operation_id, step in plan.items():
        package = exports / f"{operation_id}.zip"
        assert verify_package(package) == [], (step, logs())
        manifest = manifest_of(package)
        assert (manifest["operationId"], manifest["writtenBy"]) == (operation_id, "successor")
    # The successor's first attempt published each package; the victim completed none.
    assert sorted(tuple(row[1:]) for row in rows) == [(2, 1)] * len(STEPS), logs()
    completed = COMPLETED.findall((tmp_path / "successor" / "worker.log").read_text())
    assert sorted(completed) == sorted(ids)
    assert COMPLETED.findall(victim_log.read_text()) == []
