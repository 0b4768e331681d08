"""`serve --profile graph` shows operations as Graph's backend does, and queries them alike:
`status` is never `notStarted` (an operation is `running` from the start) and `progress` runs
from 0 to 1. Every answer about operations (POST, GET, the list, `$count`) shows those values,
and `$filter`, `$search` and `$orderby` work on them: generated filters on `status` and
`progress` must keep exactly the operations a Python reference keeps from the values the
profile's answers show. In-process, on the test store (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import AppService, service_database, start_app
from datapolicy.store.tables import operations

pytestmark = pytest.mark.operation_store  # starts services on the test store

STATUS_TYPE = "microsoft.graph.dataPolicyOperationStatus"
MEMBERS = ("notStarted", "running", "complete", "failed", "unknownFutureValue")
# (stored status, stored progress 0-100) of the operations made: every status, with progress
STORED = [
    ("notStarted", 0.0),
    ("notStarted", 0.0),
    ("running", 12.5),
    ("running", 50.0),
    ("running", 7.0),
    ("complete", 100.0),
    ("failed", 30.0),
    ("failed", 0.0),
]
Shown = dict[str, object]


@pytest.fixture(scope="module")
def graph_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppService]:
    """The Graph profile without export workers, so operations keep the states set here."""
    running = start_app(
        tmp_path_factory.mktemp("graph-operations"), "--workers", "0", "--profile", "graph"
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def http(graph_service: AppService) -> Iterator[httpx.Client]:
    with graph_service.client() as client:
        yield client


@pytest.fixture(scope="module")
def made(graph_service: AppService, http: httpx.Client) -> list[str]:
    """The ids of one operation per `STORED` entry, set to its status and progress."""
    ids = []
    for number, (status, progress) in enumerate(STORED):
        response = http.post("/dataPolicyOperations", json={"userId": f"user{number}"})
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
        with service_database(graph_service.data_dir) as database:
            database.execute(
                operations.update()
                .where(operations.c.id == ids[-1])
                .values(status=status, progress=progress)
            )
    return ids


def test_a_new_operation_is_running_from_the_start(http):
    """Graph's backend never reports notStarted: the 201 and the reads say `running`, with
    progress 0, though no worker has taken it yet."""
    created = http.post("/dataPolicyOperations", json={"userId": "newcomer"})
    assert created.status_code == 201, created.text
    assert (created.json()["status"], created.json()["progress"]) == ("running", 0)
    read = http.get(f"/dataPolicyOperations/{created.json()['id']}")
    assert (read.json()["status"], read.json()["progress"]) == ("running", 0)
    assert int(read.headers["content-length"]) == len(read.content)
    http.delete(f"/dataPolicyOperations/{created.json()['id']}").raise_for_status()


def test_progress_is_a_fraction_in_every_answer(http, made):
    shown = {item["id"]: item for item in http.get("/dataPolicyOperations").json()["value"]}
    for operation_id, (status, progress) in zip(made, STORED, strict=True):
        assert shown[operation_id]["progress"] == progress / 100
        assert shown[operation_id]["status"] == ("running" if status == "notStarted" else status)
    one = http.get(f"/dataPolicyOperations/{made[2]}", params={"$select": "progress"}).json()
    assert one["progress"] == 0.125


Predicate = Callable[[Shown], bool]


def compared(op: str, value: object, literal: object) -> bool:
    return {
        "eq": value == literal,
        "ne": value != literal,
        "gt": value > literal,  # type: ignore[operator]
        "ge": value >= literal,  # type: ignore[operator]
        "lt": value < literal,  # type: ignore[operator]
        "le": value <= literal,  # type: ignore[operator]
    }[op]


comparison = st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le"])


@st.composite
def status_condition(draw: st.DrawFn) -> tuple[str, Predicate]:
    member = draw(st.sampled_from(MEMBERS))
    op = draw(comparison)
    literal = draw(st.sampled_from([f"'{member}'", f"{STATUS_TYPE}'{member}'"]))
    rank = MEMBERS.index(member)
    return f"status {op} {literal}", lambda s: compared(op, MEMBERS.index(s["status"]), rank)


@st.composite
def progress_condition(draw: st.DrawFn) -> tuple[str, Predicate]:
    op = draw(comparison)
    number = draw(st.sampled_from(["0", "0.07", "0.125", "0.5", "1", "12.5", "50"]))
    return f"progress {op} {number}", lambda s: compared(op, s["progress"], float(number))


@st.composite
def membership(draw: st.DrawFn) -> tuple[str, Predicate]:
    members = draw(st.lists(st.sampled_from(MEMBERS[:4]), min_size=1, max_size=3))
    return (
        f"status in ({', '.join(repr(m) for m in members)})",
        lambda s: s["status"] in members,
    )


@st.composite
def starts(draw: st.DrawFn) -> tuple[str, Predicate]:
    text = draw(st.sampled_from(["not", "run", "r", "c"]))
    return f"startsWith(status, '{text}')", lambda s: str(s["status"]).startswith(text)


condition = st.recursive(
    st.one_of(status_condition(), progress_condition(), membership(), starts()),
    lambda inner: st.one_of(
        st.builds(
            lambda a, b: (f"({a[0]}) and ({b[0]})", lambda s: a[1](s) and b[1](s)), inner, inner
        ),
        st.builds(
            lambda a, b: (f"({a[0]}) or ({b[0]})", lambda s: a[1](s) or b[1](s)), inner, inner
        ),
        st.builds(lambda a: (f"not ({a[0]})", lambda s: not a[1](s)), inner),
    ),
    max_leaves=3,
)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=condition, order=st.sampled_from(["status", "status desc,progress", "progress desc"]))
@example(case=("status eq 'notStarted'", lambda s: False), order="status")
@example(case=("progress eq 0.07", lambda s: s["progress"] == 0.07), order="status")
def test_filters_and_orders_work_on_what_the_profile_shows(http, made, case, order):
    """The rows a generated `$filter` keeps (and `@odata.count` counts) are those whose shown values
    the reference predicate keeps, in the order of the shown values: no `notStarted` to find,
    progress compared as a fraction."""
    everything = http.get("/dataPolicyOperations", params={"$top": "999"}).json()["value"]
    shown = {item["id"]: item for item in everything if item["id"] in made}
    assert all(item["status"] != "notStarted" for item in everything)
    params = {"$filter": case[0], "$orderby": order, "$top": "3"}
    served: list[Shown] = []
    url: str | None = "/dataPolicyOperations"
    first = True
    while url is not None:
        response = http.get(url, params=params if first else None)
        assert response.status_code == 200, response.text
        served.extend(response.json()["value"])
        url, first = response.json().get("@odata.nextLink"), False
    ids = [item["id"] for item in served]
    assert sorted(ids) == sorted(i for i, item in shown.items() if case[1](item)), case[0]
    count = http.get("/dataPolicyOperations", params={"$filter": case[0], "$count": "true"})
    assert count.json()["@odata.count"] == len(ids)
    keys = [
        tuple(
            (-1 if name.endswith(" desc") else 1)
            * (MEMBERS.index(item["status"]) if name.startswith("status") else item["progress"])
            for name in order.split(",")
        )
        for item in served
    ]
    assert keys == sorted(keys), order


def test_search_finds_the_status_the_profile_shows(http, made):
    """`$search` looks in `status` as shown: `notstarted` finds nothing."""
    found = http.get("/dataPolicyOperations", params={"$search": '"status:notstarted"'})
    assert found.json()["value"] == []
    running = http.get("/dataPolicyOperations", params={"$search": '"status:running"'})
    assert {made[0], made[1], made[2]} <= {item["id"] for item in running.json()["value"]}


def test_head_answers_as_get_without_a_body(http, made):
    """HEAD of the list and of an operation: GET's status and headers, no body, under the
    profile's rewriting too."""
    for path in ("/dataPolicyOperations", f"/dataPolicyOperations/{made[0]}"):
        got, head = http.get(path), http.head(path)
        assert head.status_code == 200, head.text
        assert head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]
