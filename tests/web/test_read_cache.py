"""The GET-by-id read cache (web/hot_path/readcache.py): never older than the request.

Over HTTP, each test first reads an operation through the fast path (so that it is cached),
changes it some way, and reads it again at once: the answer must be the changed operation, and
the same as the routed endpoint's (a conditional GET that does not match bypasses the cache).
The cache is SQLite's only; on PostgreSQL the same tests pin that plain reads are as fresh.
"""

from __future__ import annotations

import sqlite3
from contextlib import ExitStack
from datetime import timedelta

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Service, service_database, start_app, start_service
from datapolicy.store import SQLiteDatabase
from datapolicy.store.changes import Changes, Position
from datapolicy.store.queue import OperationQueue
from datapolicy.store.tables import operations
from datapolicy.web.hot_path.readcache import ReadCache, read_cache_for

NO_MATCH = {"if-none-match": 'W/"no-such-etag"'}  # a conditional GET: the routed endpoint
IGNORED = {"request-id", "client-request-id", "date"}


def create(client: httpx.Client, user_id: str) -> dict:
    response = client.post("/dataPolicyOperations", json={"userId": user_id})
    assert response.status_code == 201, response.text
    return response.json()


def read(client: httpx.Client, operation_id: str) -> httpx.Response:
    """GET through the fast path, checked against the routed endpoint's answer."""
    fast = client.get(f"/dataPolicyOperations/{operation_id}")
    routed = client.get(f"/dataPolicyOperations/{operation_id}", headers=NO_MATCH)
    assert fast.status_code == routed.status_code
    if fast.status_code == 200:
        assert fast.content == routed.content
        assert {k: v for k, v in fast.headers.items() if k not in IGNORED} == {
            k: v for k, v in routed.headers.items() if k not in IGNORED
        }
    return fast


def cached(client: httpx.Client, operation_id: str) -> dict:
    """Read twice, so that the second answer is the cached one, and return it."""
    first = client.get(f"/dataPolicyOperations/{operation_id}")
    second = client.get(f"/dataPolicyOperations/{operation_id}")
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    return second.json()


def write(service: Service, operation_id: str, **values: object) -> None:
    """Commit a change to an operation's row from this process (another process than the
    service's), as a `datapolicy worker` process or another API process would."""
    with service_database(service.data_dir) as database:
        database.execute(
            operations.update().where(operations.c.id == operation_id).values(**values)
        )


def test_a_patch_is_seen_by_the_next_read(client, service, user_id):
    operation = create(client, user_id)
    elsewhere = f"{service.data_dir}/exports/elsewhere"
    assert cached(client, operation["id"])["storageLocation"] != elsewhere
    response = client.patch(
        f"/dataPolicyOperations/{operation['id']}", json={"storageLocation": elsewhere}
    )
    assert response.status_code == 200, response.text
    after = read(client, operation["id"])
    assert after.json()["storageLocation"] == elsewhere
    assert after.headers["etag"] == response.headers["etag"] != operation["@odata.etag"]


def test_a_delete_is_seen_by_the_next_read(client, user_id):
    operation = create(client, user_id)
    cached(client, operation["id"])
    assert client.delete(f"/dataPolicyOperations/{operation['id']}").status_code == 204
    assert read(client, operation["id"]).status_code == 404


def test_another_process_s_writes_are_seen_by_the_next_read(client, service, user_id):
    """Progress and completion as a worker in another process records them, then a deletion
    (a complete operation's row is only marked)."""
    operation = create(client, user_id)
    cached(client, operation["id"])
    write(
        service,
        operation["id"],
        status="running",
        progress=42.5,
        version=operations.c.version + 1,
    )
    body = read(client, operation["id"]).json()
    assert (body["status"], body["progress"]) == ("running", 42.5)
    cached(client, operation["id"])
    write(
        service,
        operation["id"],
        status="complete",
        progress=100,
        completed_at=operations.c.submitted_at,
        version=operations.c.version + 1,
    )
    assert read(client, operation["id"]).json()["status"] == "complete"
    cached(client, operation["id"])
    write(service, operation["id"], deleted_at=1)
    assert read(client, operation["id"]).status_code == 404


@pytest.mark.operation_store  # a service on the test store; the cache's own tests are SQLite's
def test_a_worker_s_progress_is_seen_by_the_next_read(tmp_path):
    """A `datapolicy worker`'s queue calls, made from this process: claim, heartbeat, complete."""
    service = start_app(tmp_path / "data", "--workers", "0")
    try:
        with service.client() as client, ExitStack() as stack:
            operation = create(client, "a-user")
            assert cached(client, operation["id"])["status"] == "notStarted"
            database = stack.enter_context(service_database(service.data_dir))
            queue = OperationQueue(database)
            job = queue.claim("test-worker", timedelta(minutes=1))
            assert job is not None
            assert job.operation.id == operation["id"]
            assert read(client, operation["id"]).json()["status"] == "running"
            cached(client, operation["id"])
            assert queue.heartbeat(operation["id"], "test-worker", timedelta(minutes=1), 37.5)
            assert read(client, operation["id"]).json()["progress"] == 37.5
            cached(client, operation["id"])
            assert queue.complete(operation["id"], "test-worker", lambda: "/tmp/package.zip")
            body = read(client, operation["id"]).json()
            assert (body["status"], body["progress"]) == ("complete", 100)
    finally:
        service.stop()


@pytest.mark.e2e  # two `serve` processes on one store
@pytest.mark.operation_store
def test_another_api_process_s_delete_is_seen_by_the_next_read(tmp_path):
    first = start_service(tmp_path / "data", "--workers", "0")
    try:
        second = start_service(first.data_dir, "--workers", "0")
        try:
            with first.client() as one, second.client() as two:
                operation = create(one, "a-user")
                cached(one, operation["id"])
                cached(two, operation["id"])
                assert two.delete(f"/dataPolicyOperations/{operation['id']}").status_code == 204
                assert read(one, operation["id"]).status_code == 404
        finally:
            second.stop()
    finally:
        first.stop()


# --- the cache itself ----------------------------------------------------------------------


class Counter:
    """A change token that counts how often it is asked."""

    def __init__(self) -> None:
        self.value = 0
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.value


def _cannot_tell(seen: Position | None) -> Changes:
    """A change log that never says which operations changed: every commit empties the cache."""
    return Changes(None, None)


async def test_every_lookup_checks_for_commits_whatever_the_loop_has_run():
    """A commit between two lookups in one step of the event loop is seen by the second: the
    cache does not rely on how the HTTP server schedules requests (a server that reads a request
    and runs the app at once would otherwise be served a body older than the request)."""
    token = Counter()
    cache = ReadCache(token, _cannot_tell)
    cache.get("a")
    cache.put("a", (b"body", b"etag"))
    assert cache.get("a") is not None
    assert token.calls == 2
    token.value += 1  # a commit, with nothing awaited since the last lookup
    assert cache.get("a") is None


async def test_the_least_recently_used_entry_goes_first():
    cache = ReadCache(Counter(), _cannot_tell, max_entries=2)
    for key in ("a", "b"):
        cache.get(key)
        cache.put(key, (key.encode(), b"etag"))
    cache.get("a")  # now b is the least recently used
    cache.get("c")
    cache.put("c", (b"c", b"etag"))
    assert len(cache) == 2
    assert cache.get("b") is None
    assert cache.get("a") is not None
    assert cache.get("c") is not None


async def test_a_commit_drops_only_the_operations_the_change_log_names():
    token = Counter()
    logged: list[Changes] = []
    cache = ReadCache(token, lambda seen: logged.pop(0))
    logged.append(Changes(Position(1, 5), None))  # the first check: where the log ends
    for key in ("a", "b", "c"):
        cache.get(key)
        cache.put(key, (key.encode(), b"etag", "u"))
    token.value += 1
    logged.append(Changes(Position(1, 6), frozenset({"b"})))
    assert cache.get("a") is not None
    assert cache.get("b") is None
    assert cache.get("c") is not None
    token.value += 1
    logged.append(Changes(Position(1, 9), None))  # the log cannot tell: everything goes
    assert cache.get("a") is None
    assert len(cache) == 0


def _direct(database: SQLiteDatabase, operation_id: str) -> bytes | None:
    row = database.fetch_one("SELECT * FROM operations WHERE id = ?", (operation_id,))
    return None if row is None else repr(tuple(row)).encode()


def _through_cache(cache: ReadCache, database: SQLiteDatabase, operation_id: str) -> bytes | None:
    """What the fast path does: the cached body, or a read of the store put in the cache."""
    entry = cache.get(operation_id)
    if entry is None:
        body = _direct(database, operation_id)
        if body is None:
            return None
        entry = (body, b"etag", "u")
        cache.put(operation_id, entry)
    return entry[0]


_IDS = st.sampled_from("abcdef")
_STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("read"), _IDS),
        st.tuples(st.sampled_from(["update", "delete", "insert"]), _IDS, st.integers(0, 1)),
        st.tuples(st.just("elsewhere"), st.just(""), st.integers(0, 1)),  # another table
    ),
    max_size=40,
)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=_STEPS)
def test_every_read_through_the_cache_is_what_the_store_holds(tmp_path_factory, steps):
    """Generated histories of reads and other connections' commits: each read through the cache
    equals a read of the store made after it (the reference)."""
    database = SQLiteDatabase(tmp_path_factory.mktemp("cache") / "store.sqlite3")
    database.migrate()
    cache = read_cache_for(database)
    assert cache is not None
    writers = [sqlite3.connect(database.path, isolation_level=None) for _ in range(2)]
    insert = (
        "INSERT OR IGNORE INTO operations (id, user_id, status, progress, submitted_at, version)"
        " VALUES (?, 'u', 'notStarted', 0, 0, 1)"
    )
    try:
        writers[0].execute("CREATE TABLE elsewhere (x)")
        for operation_id in "abc":
            writers[0].execute(insert, (operation_id,))
        for step in steps:
            if step[0] == "read":
                got = _through_cache(cache, database, step[1])
                assert got == _direct(database, step[1]), steps
                continue
            kind, operation_id, which = step
            writer = writers[which]
            if kind == "update":
                writer.execute(
                    "UPDATE operations SET progress = progress + 1, version = version + 1 "
                    "WHERE id = ?",
                    (operation_id,),
                )
            elif kind == "delete":
                writer.execute("DELETE FROM operations WHERE id = ?", (operation_id,))
            elif kind == "insert":
                writer.execute(insert, (operation_id,))
            else:
                writer.execute("INSERT INTO elsewhere VALUES (1)")
    finally:
        for writer in writers:
            writer.close()
        database.close()
