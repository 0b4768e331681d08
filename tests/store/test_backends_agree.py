"""SQLite and PostgreSQL give the same answers: generated `$filter`, `$search` and `$orderby`
queries (and every `$skiptoken` page of them) run against the same rows in both databases, and
the operations each returns, in order, must be the same.

The rows are chosen where the databases' defaults differ: letters in both cases and beyond
ASCII, LIKE's wildcards and escape character, NULLs in sortable columns, equal sort keys,
numbers with and without fractions, and a Boolean (`dryRun`: a boolean column on PostgreSQL,
0 or 1 on SQLite) with nulls. Hypothesis runs derandomized, so every run sends the same
queries.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from databases import POSTGRESQL, SQLITE, store_database
from datapolicy.errors import QueryOptionError
from datapolicy.odata.options import LIST_OPTIONS, parse_query_options
from datapolicy.store import OperationStore
from datapolicy.store.tables import operations
from datapolicy.store.timestamps import to_micros

USERS = ("alice", "Alice", "ALICE", "bob", "Ärger", "ärger", "a_b", "a%b", "a/b", "z", "")
LOCATIONS = (None, "/exports/a", "/exports/A", "s3://bucket/x", "/exports/100%_done", "/é")
PROGRESS = (0.0, 12.5, 50.0, 50.0, 99.9, 100.0)
STATUSES = ("notStarted", "running", "complete", "failed")
BASE = to_micros(datetime(2026, 1, 1, tzinfo=UTC))


def rows() -> Iterator[dict[str, object]]:
    for n in range(90):
        status = STATUSES[n % 4]
        yield {
            "id": f"{n * 7919 % 1000:04d}-{n:04d}",
            "user_id": USERS[n % len(USERS)],
            "status": status,
            "progress": PROGRESS[(n // 3) % len(PROGRESS)],
            "storage_location": LOCATIONS[(n // 2) % len(LOCATIONS)],
            "submitted_at": BASE + (n // 3) * 1_000_000,  # equal times, broken by id
            "completed_at": BASE + n * 10 if status in ("complete", "failed") else None,
            "version": 1,
            # every third an export (no dryRun), else an erasure, a dry run or not
            "operation_type": "exportPersonalData" if n % 3 == 0 else "erasePersonalData",
            "dry_run": None if n % 3 == 0 else n % 2 == 0,
        }


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, OperationStore]]:
    directory = tmp_path_factory.mktemp("agree")
    with (
        store_database(SQLITE, directory) as sqlite,
        store_database(POSTGRESQL, directory) as postgresql,
    ):
        for database in (sqlite, postgresql):
            database.execute(operations.insert().values(list(rows())))
        yield {SQLITE: OperationStore(sqlite), POSTGRESQL: OperationStore(postgresql)}


STRING_PROPS = ("userId", "storageLocation", "id")
TEXTS = st.sampled_from(
    [u for u in USERS] + [loc for loc in LOCATIONS if loc] + ["a", "A", "%", "_", "/", "ä", "Ä"]
)


def quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


comparison = st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le"])
string_condition = st.one_of(
    st.builds(
        lambda p, op, v: f"{p} {op} {quoted(v)}", st.sampled_from(STRING_PROPS), comparison, TEXTS
    ),
    st.builds(
        lambda f, p, v: f"{f}({p}, {quoted(v)})",
        st.sampled_from(["startswith", "endswith", "contains"]),
        st.sampled_from(STRING_PROPS),
        TEXTS,
    ),
    st.builds(lambda op: f"storageLocation {op} null", st.sampled_from(["eq", "ne"])),
    st.builds(
        lambda vs: f"userId in ({', '.join(quoted(v) for v in vs)})",
        st.lists(TEXTS, min_size=1, max_size=3),
    ),
)
number_condition = st.builds(
    lambda op, v: f"progress {op} {v}",
    comparison,
    st.sampled_from(["0", "12.5", "50", "50.0", "99.9", "100", "-1", "1e2", "49.99"]),
)
other_condition = st.one_of(
    st.builds(
        lambda op, s: f"status {op} '{s}'", st.sampled_from(["eq", "ne"]), st.sampled_from(STATUSES)
    ),
    st.builds(
        lambda op, v: f"completedDateTime {op} {v}",
        comparison,
        st.sampled_from(["null", "2026-01-01T00:00:00.0005Z", "2026-01-01T00:00:00Z"]),
    ),
    st.builds(
        lambda op: f"completedDateTime {op} submittedDateTime",
        comparison,
    ),
    st.builds(
        lambda op, v: f"dryRun {op} {v}",
        st.sampled_from(["eq", "ne"]),
        st.sampled_from(["true", "false", "null"]),
    ),
    st.builds(lambda op, v: f"dryRun {op} {v}", comparison, st.sampled_from(["true", "false"])),
    st.builds(
        lambda vs: f"dryRun in ({', '.join(vs)})",
        st.lists(st.sampled_from(["true", "false", "null"]), min_size=1, max_size=3),
    ),
    st.builds(
        lambda op, v: f"operationType {op} '{v}'",
        comparison,
        st.sampled_from(["exportPersonalData", "erasePersonalData"]),
    ),
)
condition = st.recursive(
    st.one_of(string_condition, number_condition, other_condition),
    lambda inner: st.one_of(
        st.builds(lambda a, j, b: f"({a}) {j} ({b})", inner, st.sampled_from(["and", "or"]), inner),
        st.builds(lambda a: f"not ({a})", inner),
    ),
    max_leaves=4,
)
order_item = st.builds(
    lambda p, d: f"{p}{d}",
    st.sampled_from(
        [
            "userId",
            "storageLocation",
            "progress",
            "status",
            "completedDateTime",
            "submittedDateTime",
            "id",
            "operationType",
            "dryRun",
        ]
    ),
    st.sampled_from(["", " asc", " desc"]),
)
search = st.builds(
    lambda terms, j: f" {j} ".join(f'"{t}"' for t in terms),
    st.lists(
        st.sampled_from(["alice", "ÄRGER", "ärger", "a_b", "100%", "bucket", "RUN"]),
        min_size=1,
        max_size=2,
    ),
    st.sampled_from(["AND", "OR"]),
)


def answer(store: OperationStore, options: list[tuple[str, str]]) -> list[str] | str:
    """The ids on every page, or the error message (which must be the same too)."""
    seen: list[str] = []
    token = None
    for _ in range(200):
        pairs = options if token is None else [*options, ("$skiptoken", token.encode())]
        try:
            page = store.list(parse_query_options(pairs, LIST_OPTIONS))
        except QueryOptionError as exc:
            return exc.message
        seen.extend(op.id for op in page.items)
        if page.next is None:
            return seen
        token = page.next
    raise AssertionError("paging did not end")


AGREE = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@AGREE
@given(
    filter_=st.one_of(st.none(), condition),
    search_=st.one_of(st.none(), search),
    orderby=st.lists(order_item, max_size=3),
    top=st.sampled_from([None, "1", "7", "50"]),
)
def test_both_databases_answer_alike(stores, filter_, search_, orderby, top):
    options = [
        (name, value)
        for name, value in (
            ("$filter", filter_),
            ("$search", search_),
            ("$orderby", ",".join(orderby) or None),
            ("$top", top),
        )
        if value is not None
    ]
    expected = answer(stores[SQLITE], options)
    assert answer(stores[POSTGRESQL], options) == expected, options
    if not isinstance(expected, str):
        counted = parse_query_options([*options, ("$count", "true")], LIST_OPTIONS)
        assert stores[SQLITE].count(counted) == stores[POSTGRESQL].count(counted)
