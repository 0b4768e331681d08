"""`progressDetail` over HTTP, in-process on the test store: what a worker's heartbeat recorded
(the part it is writing, the records and bytes written) is served by id (fast and routed path
alike), in lists and under `$select`, as the OpenAPI description declares it, unchanged by the
Graph profile (as `operationType`); it is neither filterable nor orderable, nor settable."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from jsonschema import Draft202012Validator

from conftest import service_database, start_app
from datapolicy.model import ProgressDetail
from datapolicy.store.queue import OperationQueue

pytestmark = pytest.mark.operation_store  # starts services on the test store

LEASE = timedelta(minutes=1)
DETAIL = ProgressDetail("shop/orders", 12_345, 678)
SHOWN = {"part": "shop/orders", "records": 12_345, "bytes": 678}
NO_MATCH = {"if-none-match": 'W/"no-such-etag"'}  # a conditional GET: the routed endpoint


def running_with_detail(data_dir: Path, client: httpx.Client) -> tuple[str, str]:
    """An operation that a worker (this process) claimed and recorded 40% and `DETAIL` for,
    and another one still waiting, without any; their ids."""
    waiting = client.post("/dataPolicyOperations", json={"userId": "second"}).json()["id"]
    with service_database(data_dir) as database:
        queue = OperationQueue(database)
        job = queue.claim("test-worker", LEASE)
        assert job is not None
        assert queue.heartbeat(job.operation.id, "test-worker", LEASE, 40.0, DETAIL)
    return job.operation.id, waiting


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[Path, httpx.Client]]:
    with ExitStack() as stack:
        app = start_app(tmp_path / "data", "--workers", "0")
        stack.callback(app.stop)
        client = stack.enter_context(app.client())
        client.post("/dataPolicyOperations", json={"userId": "first"}).raise_for_status()
        yield app.data_dir, client


def test_the_recorded_detail_is_served_by_id_and_in_lists(service):
    data_dir, client = service
    running, waiting = running_with_detail(data_dir, client)
    fast = client.get(f"/dataPolicyOperations/{running}")
    routed = client.get(f"/dataPolicyOperations/{running}", headers=NO_MATCH)
    assert fast.status_code == routed.status_code == 200
    assert fast.content == routed.content
    body = fast.json()
    assert (body["progress"], body["progressDetail"]) == (40.0, SHOWN)
    assert client.get(f"/dataPolicyOperations/{waiting}").json()["progressDetail"] is None
    listed = client.get("/dataPolicyOperations").json()["value"]
    assert {item["id"]: item["progressDetail"] for item in listed} == {
        running: SHOWN,
        waiting: None,
    }
    selected = client.get(
        "/dataPolicyOperations", params={"$select": "userId,progressDetail"}
    ).json()["value"]
    assert [{k: v for k, v in item.items() if not k.startswith("@")} for item in selected] == [
        {"userId": "first", "progressDetail": SHOWN},
        {"userId": "second", "progressDetail": None},
    ]


def test_the_served_entity_is_valid_against_the_served_description(service):
    data_dir, client = service
    running, _ = running_with_detail(data_dir, client)
    document = client.get("/openapi.json").json()
    validator = Draft202012Validator(
        {
            "$ref": "#/components/schemas/microsoft.graph.dataPolicyOperation",
            "components": document["components"],
        }
    )
    body = client.get(f"/dataPolicyOperations/{running}").json()
    assert list(validator.iter_errors(body)) == []
    assert list(validator.iter_errors({**body, "progressDetail": {"part": "x"}}))  # incomplete


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"$filter": "progressDetail eq null"}, "cannot be used in $filter"),
        ({"$orderby": "progressDetail"}, "cannot be used in $orderby"),
    ],
)
def test_the_detail_is_neither_filterable_nor_orderable(service, query, message):
    _, client = service
    response = client.get("/dataPolicyOperations", params=query)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]


def test_a_client_cannot_set_the_detail(service):
    _, client = service
    response = client.post("/dataPolicyOperations", json={"userId": "u", "progressDetail": SHOWN})
    assert response.status_code == 400, response.text
    assert "'progressDetail' cannot be set" in response.json()["error"]["message"]
    created = client.post("/dataPolicyOperations", json={"userId": "u", "progressDetail": None})
    assert created.status_code == 201, created.text


def test_the_graph_profile_shows_the_detail_as_recorded(tmp_path):
    """The profile rescales `progress` (0 to 1) but leaves datapolicy's own properties alone,
    `operationType` and `progressDetail` alike."""
    app = start_app(tmp_path / "data", "--workers", "0", "--profile", "graph")
    try:
        with app.client() as client:
            running, _ = running_with_detail(app.data_dir, client)
            body = client.get(f"/dataPolicyOperations/{running}").json()
            assert (body["progress"], body["progressDetail"]) == (0.4, SHOWN)
            assert body["operationType"] == "exportPersonalData"
    finally:
        app.stop()
