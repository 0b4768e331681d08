"""A list page is written straight from the rows the store read (`entity_rows`), with SQL the
store compiled once per query shape: generated `$filter`, `$search`, `$orderby`, `$select`,
`$top` and `$count` queries, and every `@odata.nextLink` page of them, must answer byte for byte
what the entity path writes (`entity` of each `Operation`, the serialization GET uses), and a
store whose statement cache is warm from earlier queries must answer as one that compiles each
query afresh. Paging must neither skip nor repeat: the pages together are the query's rows in
one page.

The rows are chosen where a fast path could differ: date-times with and without a fraction of a
second (orjson and `format_datetime` write them), far past and future dates, failed operations
with and without an error code, errors kept by operations that are not failed, nulls, numbers
that are not exact in binary, and text that LIKE and JSON must escape. The handler runs
in-process (Starlette's test client over the list route alone), on the pass's store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Scope

from conftest import TEST_STORE
from databases import store_database
from datapolicy.config import LimitsConfig
from datapolicy.errors import QueryOptionError
from datapolicy.odata.options import LIST_OPTIONS, parse_query_options
from datapolicy.store import OperationStore
from datapolicy.store.audit import AuditAction
from datapolicy.store.operations import to_micros
from datapolicy.store.tables import operations
from datapolicy.web.routes.operations import _next_link, list_operations
from datapolicy.web.routes.serialize import context_url, entity

pytestmark = pytest.mark.operation_store  # starts services on the test store

ROOT = "http://testserver/v1.0"
USERS = ("alice", "Alice", "a_b", "a%b", 'quote"back\\slash', "ünï©ødé", "tab\there")
LOCATIONS = (None, "/exports/a", "/exports/100%_done", "s3://bucket/x/", "/é")
PROGRESS = (0.0, 0.1 + 0.2, 12.5, 1e-7, 99.99999999999999, 100.0)
STATUSES = ("notStarted", "running", "complete", "failed")
TIMES = (
    to_micros(datetime(2026, 1, 1, tzinfo=UTC)),  # no fraction of a second
    to_micros(datetime(2026, 1, 1, 0, 0, 0, 120000, tzinfo=UTC)),
    to_micros(datetime(2026, 3, 4, 5, 6, 7, 1, tzinfo=UTC)),
    to_micros(datetime(1970, 1, 1, tzinfo=UTC)),
    to_micros(datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    to_micros(datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    to_micros(datetime(1, 1, 1, 0, 0, 0, 50, tzinfo=UTC)),
)


def rows() -> Iterator[dict[str, object]]:
    for n in range(60):
        status = STATUSES[n % 4]
        errored = status == "failed" or n % 5 == 0  # a retried operation keeps its last error
        yield {
            "id": f"{n * 7919 % 1000:04d}-{n:04d}",
            "user_id": USERS[n % len(USERS)],
            "status": status,
            "progress": PROGRESS[n % len(PROGRESS)],
            "storage_location": LOCATIONS[(n // 2) % len(LOCATIONS)],
            "submitted_at": TIMES[(n // 3) % len(TIMES)] - n // 9,  # equal times, broken by id
            "completed_at": TIMES[n % len(TIMES)] if n % 3 else None,
            "version": 1 + n % 4,
            "error_code": None if n % 7 == 0 else "sourceUnavailable" if errored else None,
            "error_message": 'It failed: "x" \u2028 <y>' if errored and n % 2 else None,
        }


class AuditedReads:
    """The audit of reads, as the list handler hands it over: counted, so that every page is
    shown to be audited."""

    def __init__(self) -> None:
        self.actions: list[AuditAction] = []

    def later(self, scope: Scope, action: AuditAction, **details: Any) -> None:
        self.actions.append(action)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with store_database(TEST_STORE, tmp_path_factory.mktemp("lists")) as database:
        database.execute(operations.insert().values(list(rows())))
        yield database


@pytest.fixture(scope="module")
def app(database: Any) -> Starlette:
    app = Starlette(routes=[Route("/v1.0/dataPolicyOperations", list_operations)])
    app.state.store = OperationStore(database)  # its statement cache stays warm for the module
    app.state.limits = LimitsConfig()
    app.state.audit = AuditedReads()
    return app


def entity_path_body(store: OperationStore, pairs: list[tuple[str, str]]) -> bytes:
    """The list response as the entity path writes it: each row made an `Operation`, written
    by `entity`, by the SQL of a store that has compiled nothing yet."""
    options = parse_query_options(pairs, LIST_OPTIONS)
    page = store.list(options)
    body: dict[str, object] = {"@odata.context": context_url(ROOT, options.select, entity=False)}
    if page.count is not None:
        body["@odata.count"] = page.count
    body["value"] = [entity(operation, options.select) for operation in page.items]
    if page.next is not None:
        body["@odata.nextLink"] = _next_link(ROOT, options, page.next)
    return orjson.dumps(body)


async def every_page(
    app: Starlette, pairs: list[tuple[str, str]]
) -> list[tuple[list[tuple[str, str]], httpx.Response]]:
    """Each page's query and response, following `@odata.nextLink` from the first page."""
    pages = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        path, query = "/v1.0/dataPolicyOperations", pairs
        while len(pages) < 100:
            response = await client.get(path, params=query)
            pages.append((query, response))
            link = response.json().get("@odata.nextLink") if response.status_code == 200 else None
            if link is None:
                return pages
            path, query = urlsplit(link).path, parse_qsl(urlsplit(link).query)
    raise AssertionError("paging did not end")


def quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


TEXTS = st.sampled_from([*USERS, *(loc for loc in LOCATIONS if loc), "a", "%", "_", "/", "é"])
comparison = st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le"])
leaf = st.one_of(
    st.builds(
        lambda p, op, v: f"{p} {op} {quoted(v)}",
        st.sampled_from(["userId", "storageLocation", "id"]),
        comparison,
        TEXTS,
    ),
    st.builds(
        lambda f, p, v: f"{f}({p}, {quoted(v)})",
        st.sampled_from(["startswith", "endswith", "contains"]),
        st.sampled_from(["userId", "storageLocation"]),
        TEXTS,
    ),
    st.builds(lambda op: f"storageLocation {op} null", st.sampled_from(["eq", "ne"])),
    st.builds(
        lambda vs: f"status in ({', '.join(quoted(v) for v in vs)})",
        st.lists(st.sampled_from(STATUSES), min_size=1, max_size=3),
    ),
    st.builds(
        lambda op, v: f"progress {op} {v}", comparison, st.sampled_from(["0", "12.5", "0.3"])
    ),
    st.builds(
        lambda p, op, v: f"{p} {op} {v}",
        st.sampled_from(["submittedDateTime", "completedDateTime"]),
        comparison,
        st.sampled_from(["2026-01-01T00:00:00Z", "1970-01-01T00:00:00.5Z", "null"]),
    ),
)
condition = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(lambda a, j, b: f"({a}) {j} ({b})", inner, st.sampled_from(["and", "or"]), inner),
        st.builds(lambda a: f"not ({a})", inner),
    ),
    max_leaves=3,
)
ORDERABLE = ("userId", "storageLocation", "progress", "status", "completedDateTime", "id")
order_item = st.builds(
    lambda p, d: f"{p}{d}",
    st.sampled_from([*ORDERABLE, "submittedDateTime"]),
    st.sampled_from(["", " asc", " desc"]),
)
selection = st.lists(
    st.sampled_from([*ORDERABLE, "submittedDateTime", "error"]), min_size=1, max_size=4
)


@settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    filter_=st.one_of(st.none(), condition),
    search_=st.one_of(st.none(), st.sampled_from(['"alice"', '"A_B" OR "bucket"', '"%"'])),
    orderby=st.lists(order_item, max_size=2, unique_by=lambda item: item.split()[0]),
    select=st.one_of(st.none(), selection),
    top=st.sampled_from([None, "4", "25"]),
    count=st.booleans(),
)
def test_pages_are_the_entity_paths_bytes_and_together_the_whole_query(
    app, database, filter_, search_, orderby, select, top, count
):
    pairs = [
        (name, value)
        for name, value in (
            ("$filter", filter_),
            ("$search", search_),
            ("$orderby", ",".join(orderby) or None),
            ("$select", ",".join(select) if select else None),
            ("$top", top),
            ("$count", "true" if count else None),
        )
        if value is not None
    ]
    try:
        parse_query_options(pairs, LIST_OPTIONS)
    except QueryOptionError:
        reject()  # the 400s are the query layer's (tests/odata), not the list's
    audited = len(app.state.audit.actions)
    responses = asyncio.run(every_page(app, pairs))
    served: list[str] = []
    for query, response in responses:
        assert response.status_code == 200, response.text
        assert response.content == entity_path_body(OperationStore(database), query), query
        served.extend(item.get("id", "?") for item in orjson.loads(response.content)["value"])
    assert len(app.state.audit.actions) == audited + len(responses)
    if select is None or "id" in select:
        whole = [("$top", "999"), *(p for p in pairs if p[0] not in ("$top", "$count"))]
        everything = OperationStore(database).list(parse_query_options(whole, LIST_OPTIONS))
        assert served == [operation.id for operation in everything.items]


def test_a_warm_statement_cache_binds_each_requests_values(app):
    """Two queries of one shape (same conditions, other values) share a compiled statement and
    must each get their own rows."""
    store = app.state.store
    for user in USERS:
        options = parse_query_options([("$filter", f"userId eq {quoted(user)}")], LIST_OPTIONS)
        expected = [r["id"] for r in rows() if r["user_id"] == user]
        assert sorted(op.id for op in store.list(options).items) == sorted(expected)
        assert store.count(options) == len(expected)
