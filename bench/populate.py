"""Fill a datapolicy database with N realistic operations, fast, and cache it by row count.

The schema comes from the service itself (`SQLiteDatabase(path).migrate()`); rows go straight
into the store's `operations` table (`datapolicy.store.tables.operations`) with `executemany` in
large transactions. The secondary indexes and the triggers on `operations` are dropped during the
load and re-created afterwards from their own text, so the result has exactly the schema the
service made, only sooner. No ANALYZE is run: a database the service grew itself has no
statistics either.

The data (deterministic for a given count and seed):
- ~1,000 distinct user ids (GUIDs), chosen uniformly;
- statuses: 92% complete, 8% failed, and the newest `RUNNING` operations running (as many as
  four processes' default export threads run at once); none notStarted (a live store's
  backlog is claimed within seconds);
- storage locations from a handful of local directories and file:// URLs of varied length;
- submitted times spread over the year before 2026-11-01 UTC, rows inserted in submission
  order (as the service inserts them); started and completed times for finished operations,
  leases for running ones, error codes and messages for failed ones, idempotency keys for 90%.

Nothing in it is work for the export threads of a default `datapolicy serve` (which
bench/api_throughput.py runs), so that a benchmark measures a store nobody writes to unless it
says so: the running operations are leased far ahead (`FAR`) by workers of other processes, and
every published package has been dealt with by retention (`package_deleted_at`, 30 days after
completion, `[engine] package_retention`'s default). Neither column is in a response. (With
thousands of active operations, as generator 2 made, each idle export thread's claim scanned
them all every second: 30 ms a claim at 100,000 operations.)

Run alone: `python bench/populate.py --operations 1000000` prints the cached file's path.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy.dialects import sqlite

from datapolicy.settings import DATABASE_FILE
from datapolicy.store import SQLiteDatabase
from datapolicy.store.operations import request_digest
from datapolicy.store.tables import operations

GENERATOR_VERSION = 3  # bump when the generated data changes, to invalidate cached files
SEED = 20261129
USERS = 1000
BATCH = 50_000
END = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp()) * 1_000_000
YEAR = 365 * 86_400 * 1_000_000
SECOND = 1_000_000
FAR = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000  # never due during a run
RETENTION = 30 * 86_400 * SECOND

STATUSES = ("complete", "failed")
STATUS_WEIGHTS = (92, 8)
RUNNING = 8  # the newest operations, running
LOCATIONS = (
    "/var/lib/datapolicy/exports",
    "/var/lib/datapolicy/exports",  # the default location, twice as common
    "/srv/compliance/dsar-exports",
    "/mnt/legal-hold/personal-data-exports/2026",
    "file:///data/privacy/exports",
    "file:///srv/shared/gdpr/subject-access-requests/outgoing",
)
ERRORS = (
    ("sourceUnavailable", "The source 'orders' (postgresql) could not be reached: timeout."),
    ("storageUnavailable", "The storage location could not be written: No space left on device."),
    ("workerLost", "The export was interrupted: its worker stopped responding."),
    ("userNotFound", "The user no longer exists in the directory."),
)
PARTS = ("shop/users", "shop/orders", "shop/order_items", "support/tickets", "uploads/avatar.png")
RESULTS = Path(__file__).resolve().parent / "results"


def schema_head() -> str:
    """The newest Alembic revision of the service's migrations (part of the cache key)."""
    migrations = Path(sys.modules[SQLiteDatabase.__module__].__file__ or "").with_name("migrations")
    script = ScriptDirectory(str(migrations))
    return "-".join(sorted(script.get_heads()))


def cached_data_dir(count: int, results: Path = RESULTS) -> Path:
    """The data directory (`--data-dir`) that holds the cached database of `count` rows."""
    return results / "db" / f"ops-{count}-schema{schema_head()}-gen{GENERATOR_VERSION}"


def ensure_database(count: int, results: Path = RESULTS, log=print) -> Path:
    """The data directory of a database with `count` operations, populated if not cached."""
    data_dir = cached_data_dir(count, results)
    path = data_dir / DATABASE_FILE
    if path.exists():
        log(f"using cached database {path} ({path.stat().st_size / 1e6:.0f} MB)")
        return data_dir
    building = data_dir.with_name(data_dir.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    started = time.perf_counter()
    populate(building / DATABASE_FILE, count)
    building.rename(data_dir)  # only a complete database is ever cached
    log(
        f"populated {count:,} operations in {time.perf_counter() - started:.1f} s: {path} "
        f"({path.stat().st_size / 1e6:.0f} MB)"
    )
    return data_dir


def populate(path: Path, count: int, seed: int = SEED) -> None:
    SQLiteDatabase(path).migrate()
    columns = [column.name for column in operations.columns]
    insert = str(operations.insert().compile(dialect=sqlite.dialect(paramstyle="qmark")))
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        actual = [row[1] for row in connection.execute("PRAGMA table_info(operations)")]
        if sorted(actual) != sorted(columns):
            raise SystemExit(f"schema drift: table has {actual}, tables.py says {columns}")
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-1000000")  # 1 GB while loading
        # Indexes and triggers (the change log's, migration 0014) are made again after the
        # load: kept, they would cost every row a lookup of its idempotency key without the index
        # and an entry in a log that no cache has read yet.
        indexes = connection.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') "
            "AND tbl_name = 'operations' AND sql IS NOT NULL"
        ).fetchall()
        for kind, name, _ in indexes:
            connection.execute(f'DROP {kind.upper()} "{name}"')
        rows = generate(count, seed, columns)
        while batch := [row for _, row in zip(range(BATCH), rows, strict=False)]:
            connection.execute("BEGIN")
            connection.executemany(insert, batch)
            connection.execute("COMMIT")
        for _, _, sql in indexes:
            connection.execute(sql)
        connection.execute("PRAGMA journal_mode=WAL")  # as the service leaves it
        (stored,) = connection.execute("SELECT count(*) FROM operations").fetchone()
        if stored != count:
            raise SystemExit(f"populated {stored} rows, wanted {count}")
    finally:
        connection.close()


def generate(count: int, seed: int, columns: list[str]):
    """Rows as tuples in `columns` order, in submission order."""
    rng = random.Random(seed)
    users = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(USERS)]
    submitted_times = sorted(rng.randrange(END - YEAR, END) for _ in range(count))
    statuses = rng.choices(STATUSES, STATUS_WEIGHTS, k=count)
    statuses[max(0, count - RUNNING) :] = ["running"] * min(count, RUNNING)
    for submitted, status in zip(submitted_times, statuses, strict=True):
        operation_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        location = rng.choice(LOCATIONS)
        row = {
            "id": operation_id,
            "user_id": rng.choice(users),
            "status": status,
            "progress": 0.0,
            "storage_location": location,
            "submitted_at": submitted,
            "completed_at": None,
            "version": 1,
            "attempts": 0,
            "lease_owner": None,
            "lease_expires_at": None,
            "next_attempt_at": None,
            "started_at": None,
            "error_code": None,
            "error_message": None,
            "package_location": None,
            "deleted_at": None,
            "package_deleted_at": None,  # set for published packages below (retention)
            "package_deletion": None,
            "idempotency_key": None,
            "idempotency_request": None,
            "worker_losses": 0,
            "attempt_history": None,
            "operation_type": "exportPersonalData",
            "erasure_state": None,
            "approval_pending": 0,
            "progress_part": None,  # progressDetail: what a worker last recorded writing
            "records_written": None,
            "bytes_written": None,
            "approved_by": None,  # approval (migration 0013): no erasure here needed one
            "approved_at": None,
            "package_receipt": 0,  # migration 0015: an erasure's receipt; these are exports
            "dry_run": None,  # migration 0016: an erasure's; these are exports
            "requested_by": None,
        }
        if rng.random() < 0.9:  # most clients send a client-request-id
            row["idempotency_key"] = f"client-request-id:{uuid.UUID(int=rng.getrandbits(128))}"
            row["idempotency_request"] = request_digest(row["user_id"], location)
        # every operation has started (none notStarted: see RUNNING)
        started = submitted + rng.randrange(SECOND, 120 * SECOND)
        row["started_at"] = started
        row["attempts"] = 1 if rng.random() < 0.95 else rng.randint(2, 3)
        heartbeats = rng.randint(1, 20)
        if status in ("running", "complete"):
            row["progress_part"] = rng.choice(PARTS)
            row["records_written"] = rng.randrange(1, 200_000)
            row["bytes_written"] = rng.randrange(0, 50_000_000)
        if status == "running":
            row["progress"] = round(rng.uniform(0, 99), 1)
            row["version"] = 2 + heartbeats
            row["lease_owner"] = f"datapolicy-{rng.randint(1, 4)}:worker-{rng.randint(1, 2)}"
            row["lease_expires_at"] = FAR  # a live worker's: never taken over
        else:
            row["completed_at"] = started + rng.randrange(5 * SECOND, 7_200 * SECOND)
            row["version"] = 3 + heartbeats
        if status == "complete":
            row["progress"] = 100.0
            base = location.removeprefix("file://")
            row["package_location"] = f"{base}/{operation_id}.zip"
            # retention has dealt with it: no export thread's sweep picks it up
            row["package_deleted_at"] = row["completed_at"] + RETENTION
            row["package_deletion"] = "deleted"
        elif status == "failed":
            row["progress"] = round(rng.uniform(0, 99), 1)
            row["error_code"], row["error_message"] = rng.choice(ERRORS)
        yield tuple(row[name] for name in columns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=1_000_000)
    args = parser.parse_args()
    print(ensure_database(args.operations) / DATABASE_FILE)


if __name__ == "__main__":
    main()
