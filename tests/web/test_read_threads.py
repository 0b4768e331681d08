"""GET by id reads the store on the event loop only where a read is a local file's
microseconds (SQLite); on PostgreSQL, a network round trip, it reads in a worker thread so that
the event loop goes on serving other requests. Both the fast path and the routed path. List
pages are read in a thread on both: SQLite's in a few threads of their own, PostgreSQL's in
Starlette's pool, each with the request's context variables."""

from __future__ import annotations

import threading
from typing import Any

from datapolicy import logs
from datapolicy.odata.options import LIST_OPTIONS, parse_query_options
from datapolicy.store import Database, OperationStore
from datapolicy.web.hot_path.fastpath import EntityReadPath
from datapolicy.web.routes.operations import read_in_thread, read_operation
from datapolicy.web.routes.table import API_ROUTES, ROUTE, RouteTable


class RecordingStore(OperationStore):
    """The store, noting the thread each read by id runs on (`get_row`, which `get` reads
    through and the fast path reads directly)."""

    def __init__(self, database: Database):
        super().__init__(database)
        self.threads: list[threading.Thread] = []

    def get_row(self, operation_id: str) -> tuple[Any, ...]:
        self.threads.append(threading.current_thread())
        return super().get_row(operation_id)


class NoAudit:
    def later(self, *args: Any, **kwargs: Any) -> None:
        pass


async def test_reads_by_id_leave_the_event_loop_on_postgresql_only(database: Database):
    store = RecordingStore(database)
    operation, _ = store.create("reader", "/exports")
    on_loop = threading.current_thread()
    inline = database.blocking_reads_are_cheap
    assert inline == (database.dialect.name == "sqlite")

    assert await read_operation(store, operation.id) == operation  # the routed path

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    fast_path = EntityReadPath(store, NoAudit(), cache=None)  # type: ignore[arg-type]
    fast_path.cache = None  # every request reads the store
    scope = {
        "type": "http",
        "method": "GET",
        "path": f"/v1.0/dataPolicyOperations/{operation.id}",
        "query_string": b"",
        "headers": [(b"host", b"example.test")],
        "scheme": "http",
        "server": ("example.test", 80),
    }
    scope[ROUTE] = RouteTable(API_ROUTES).match(scope["path"])  # as the pipeline puts it
    assert await fast_path.serve(scope, None, send, operation.id)  # type: ignore[arg-type]
    assert sent[0]["status"] == 200
    assert operation.id.encode() in sent[1]["body"]

    assert len(store.threads) == 2
    assert all((thread is on_loop) == inline for thread in store.threads)


async def test_list_pages_are_read_off_the_event_loop_with_the_request_s_context(
    database: Database,
):
    store = OperationStore(database)
    store.create("reader", "/exports")
    seen: list[tuple[str, str | None]] = []

    def read_page() -> int:
        seen.append((threading.current_thread().name, logs.request_id.get()))
        return len(store.list(parse_query_options((), LIST_OPTIONS)).rows)

    logs.request_id.set("the-request")
    assert await read_in_thread(store, read_page) == 1
    (thread, request_id), on_loop = seen[0], threading.current_thread()
    assert thread != on_loop.name
    assert thread.startswith("store-read") == (database.dialect.name == "sqlite")
    assert request_id == "the-request"
