"""`POST /v1.0/$batch`, Graph's JSON batching (web/routes/batch.py), in process: each request
runs through the whole app as if sent alone (its route's permission with the batch's token, its
rate budget, its metrics and audit entry); `dependsOn` orders requests and a failed dependency
is a 424; what is malformed (too many requests, repeated ids, cycles, a write without a body or
Content-Type...) is refused whole with 400 and runs nothing; JSON bodies inline, others in
base64; responses in the batch's order. `test_batch_reference.py` compares generated batches
with the same requests sent one by one.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from conftest import AppService, Service, configured_app, token_for
from datapolicy.auth.permissions import EXPORT, PERMISSIONS, READ_USERS
from datapolicy.demo import demo_user_id
from datapolicy.metrics import REQUEST_DURATION
from datapolicy.store.audit import AuditAction, AuditFilter
from datapolicy.web.routes import batch
from datapolicy.web.routes.batch import TOO_MANY
from datapolicy.web.routes.roots import API_ROOT, ROUTE
from datapolicy.web.routes.table import RouteMatch

pytestmark = pytest.mark.operation_store  # starts services on the test store

JSON = {"Content-Type": "application/json"}
WRITE_BURST = 4
LIMITS = f"""
[limits]
write_rate = 0.01
write_burst = {WRITE_BURST}
read_rate = 10000
read_burst = 10000
max_body_bytes = 4096
"""


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppService]:
    """A service with a small write budget and a small body limit."""
    running = configured_app(tmp_path_factory.mktemp("batch-limits"), LIMITS, "--workers", "0")
    yield running
    running.stop()


def send(http: httpx.Client, *requests: dict[str, Any]) -> httpx.Response:
    return http.post("/$batch", json={"requests": list(requests)})


def answers(response: httpx.Response) -> dict[str, dict[str, Any]]:
    """The batch's responses by id, after checking the batch itself was a 200."""
    assert response.status_code == 200, response.text
    return {item["id"]: item for item in response.json()["responses"]}


def create(user_id: str, request_id: str = "create", **extra: Any) -> dict[str, Any]:
    return {
        "id": request_id,
        "method": "POST",
        "url": "/dataPolicyOperations",
        "headers": JSON,
        "body": {"userId": user_id},
        **extra,
    }


def count_of(http: httpx.Client, user_id: str) -> int:
    response = http.get(
        "/dataPolicyOperations/$count", params={"$filter": f"userId eq '{user_id}'"}
    )
    assert response.status_code == 200, response.text
    return int(response.text)


def client_with(service: Service, *permissions: str) -> httpx.Client:
    token = token_for(service.data_dir, *permissions, subject=str(uuid.uuid4()))
    return service.client(headers={"Authorization": f"Bearer {token}"})


# --- each request through the app ---------------------------------------------------------------


def test_requests_answer_with_their_status_headers_and_body(client, service, user_id):
    """A create, a read that depends on it, a `$count` (text, so base64) and an unknown path:
    each with the status, headers and body it has alone; the URL with or without its `/`."""
    response = send(
        client,
        create(user_id),
        {
            "id": "count",
            "method": "GET",
            "url": f"dataPolicyOperations/$count?$filter=userId eq '{user_id}'",
            "dependsOn": ["create"],
        },
        {"id": "unknown", "method": "GET", "url": "/noSuchThing"},
    )
    assert response.headers["content-type"].startswith("application/json")
    items = answers(response)
    created = items["create"]
    assert created["status"] == 201
    assert created["body"]["userId"] == user_id
    assert created["body"]["status"] == "notStarted"
    assert (
        created["headers"]["Location"]
        == f"{service.url}/dataPolicyOperations/" + (created["body"]["id"])
    )
    assert created["headers"]["ETag"] == created["body"]["@odata.etag"]
    assert created["headers"]["Content-Type"].startswith("application/json")
    assert created["headers"]["request-id"] != response.headers["request-id"]  # its own
    assert items["count"]["status"] == 200
    assert items["count"]["headers"]["Content-Type"].startswith("text/plain")
    assert base64.b64decode(items["count"]["body"]) == b"1"
    unknown_alone = client.get("/noSuchThing")
    assert items["unknown"]["status"] == unknown_alone.status_code >= 400
    assert items["unknown"]["body"]["error"]["code"] == unknown_alone.json()["error"]["code"]
    # The same operation, read alone, is what the batch made.
    alone = client.get(f"/dataPolicyOperations/{created['body']['id']}")
    assert alone.json() == created["body"]


def test_responses_are_in_the_batch_order_and_requests_run_after_their_dependencies(
    client, user_id
):
    """The delete is listed first but depends on the read listed second: the read runs first
    (200), then the delete (204); the responses stay in the batch's order."""
    operation_id = client.post("/dataPolicyOperations", json={"userId": user_id}).json()["id"]
    url = f"/dataPolicyOperations/{operation_id}"
    response = send(
        client,
        {"id": "delete", "method": "DELETE", "url": url, "dependsOn": ["read"]},
        {"id": "read", "method": "GET", "url": url},
        {"id": "again", "method": "GET", "url": url},
    )
    items = response.json()["responses"]
    assert [item["id"] for item in items] == ["delete", "read", "again"]
    assert [item["status"] for item in items] == [204, 200, 404]
    assert "body" not in items[0]  # a 204 has none


def test_export_personal_data_answers_202_with_its_location(client, service, user_id):
    """Graph's action in a batch: 202, no body, `Location` naming the new operation, which
    exists."""
    location = f"{service.data_dir}/exports"
    items = answers(
        send(
            client,
            {
                "id": "1",
                "method": "POST",
                "url": f"/users/{user_id}/exportPersonalData",
                "headers": JSON,
                "body": {"storageLocation": location},
            },
        )
    )
    item = items["1"]
    assert item["status"] == 202, item
    assert "body" not in item
    assert item["headers"]["Location"].startswith(f"{service.url}/dataPolicyOperations/")
    assert item["headers"]["Retry-After"]
    alone = client.get(item["headers"]["Location"])
    assert alone.status_code == 200
    assert alone.json()["userId"] == user_id


def test_a_package_is_answered_in_base64(demo_service: Service):
    """A binary body (the package's ZIP) is its bytes in base64, the same bytes a download
    alone gets."""
    with demo_service.client() as http:
        operation = http.post("/dataPolicyOperations", json={"userId": demo_user_id(4)}).json()
        deadline = time.monotonic() + 60
        while operation["status"] != "complete":
            assert operation["status"] in ("notStarted", "running"), operation
            assert time.monotonic() < deadline, operation
            time.sleep(0.05)
            operation = http.get(f"/dataPolicyOperations/{operation['id']}").json()
        url = f"/dataPolicyOperations/{operation['id']}/package"
        item = answers(send(http, {"id": "zip", "method": "GET", "url": url}))["zip"]
        alone = http.get(url)
    assert item["status"] == 200
    assert item["headers"]["Content-Type"] == "application/zip"
    package = base64.b64decode(item["body"], validate=True)
    assert package == alone.content
    assert "manifest.json" in zipfile.ZipFile(io.BytesIO(package)).namelist()


def test_a_response_past_the_batch_budget_is_refused_in_its_place(client, user_id, monkeypatch):
    """Responses share a budget of bytes: the one past it is a 400 saying to send it alone,
    and the others are answered."""
    monkeypatch.setattr(batch, "RESPONSE_BYTES", 600)
    items = answers(send(client, create(user_id, "a"), create(user_id, "b")))
    assert items["a"]["status"] == 201
    assert items["b"]["status"] == 400
    assert "send it alone" in items["b"]["body"]["error"]["message"]
    assert count_of(client, user_id) == 2  # it did run


# --- dependsOn ------------------------------------------------------------------------------------


def test_a_failed_dependency_fails_its_dependents_with_424_without_running_them(client, user_id):
    """A request depending on a failed one is a 424 `FailedDependency` and does not run; a
    request depending on that 424 is a 424 too; an independent one runs."""
    items = answers(
        send(
            client,
            {"id": "missing", "method": "GET", "url": f"/dataPolicyOperations/{uuid.uuid4()}"},
            create(user_id, "after", dependsOn=["missing"]),
            create(user_id, "later", dependsOn=["AFTER"]),  # ids compare without case
            create(user_id, "free"),
        )
    )
    assert items["missing"]["status"] == 404
    for request_id, failed in (("after", "missing"), ("later", "after")):
        assert items[request_id]["status"] == 424
        error = items[request_id]["body"]["error"]
        assert error["code"] == "FailedDependency"
        assert f"'{failed}'" in error["message"]
    assert items["free"]["status"] == 201
    assert count_of(client, user_id) == 1


@pytest.mark.parametrize(
    ("requests", "message"),
    [
        (
            [create("u", "a", dependsOn=["b"]), create("u", "b", dependsOn=["a"])],
            "cycle",
        ),
        ([create("u", "a", dependsOn=["a"])], "cycle"),
        ([create("u", "a", dependsOn=["nobody"])], "not a request of the batch"),
        ([create("u", "a", dependsOn="b")], "dependsOn"),
        ([create("u", "a"), create("u", "A")], "more than once"),
        ([create("u", "a"), create("u", "a")], "more than once"),
        ([{"method": "GET", "url": "/users"}], "'id'"),
        ([{"id": 1, "method": "GET", "url": "/users"}], "'id'"),
        ([{"id": "a", "method": "OPTIONS", "url": "/users"}], "method"),
        ([{"id": "a", "url": "/users"}], "method"),
        ([{"id": "a", "method": "GET"}], "url"),
        (
            [{"id": "a", "method": "GET", "url": "https://graph.microsoft.com/v1.0/users"}],
            "relative",
        ),
        ([{"id": "a", "method": "GET", "url": "//evil.example/users"}], "relative"),
        ([{"id": "a", "method": "GET", "url": "/users", "headers": ["x"]}], "headers"),
        ([{"id": "a", "method": "GET", "url": "/users", "headers": {"X y": "1"}}], "header"),
        ([{"id": "a", "method": "GET", "url": "/users", "headers": {"X": "a\r\nb"}}], "header"),
        ([{"id": "a", "method": "GET", "url": "/users", "headers": {"X": 1}}], "header"),
        (
            [
                {
                    "id": "a",
                    "method": "POST",
                    "url": "/dataPolicyOperations",
                    "body": {"userId": "u"},
                }
            ],
            "Write request id : a does not contain Content-Type header or body.",
        ),
        (
            [{"id": "a", "method": "POST", "url": "/dataPolicyOperations", "headers": JSON}],
            "Write request id : a does not contain Content-Type header or body.",
        ),
        ([{"id": "a", "method": "GET", "url": "/users", "body": {}}], "Content-Type"),
        (
            [
                {
                    "id": "a",
                    "method": "POST",
                    "url": "/dataPolicyOperations",
                    "headers": {"Content-Type": "image/png"},
                    "body": "not base64!",
                }
            ],
            "base64",
        ),
        (
            [
                {
                    "id": "a",
                    "method": "POST",
                    "url": "/dataPolicyOperations",
                    "headers": {"Content-Type": "image/png"},
                    "body": {"x": 1},
                }
            ],
            "base64",
        ),
        (["not an object"], "not a JSON object"),
    ],
)
def test_a_malformed_batch_is_refused_whole_and_runs_nothing(client, user_id, requests, message):
    """Cycles, unknown or repeated ids, bad methods, URLs, headers and bodies: 400 `BadRequest`
    naming the problem, and not one of the batch's requests runs (a valid create is put first
    in each)."""
    first = create(user_id, "valid-first")
    response = send(client, first, *requests)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "BadRequest"
    assert message in error["message"]
    assert count_of(client, user_id) == 0


def test_more_than_20_requests_are_refused_with_grahps_words(client, user_id):
    """21 requests: 400 in Graph's documented words, none run; 20 run."""
    requests = [create(user_id, str(i)) for i in range(21)]
    refused = send(client, *requests)
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == TOO_MANY
    assert count_of(client, user_id) == 0
    items = answers(send(client, *requests[:20]))
    assert [item["status"] for item in items.values()] == [201] * 20


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{", 400),
        (b"[]", 400),
        (b'{"requests": {}}', 400),
    ],
)
def test_a_body_that_is_not_a_batch_is_a_400(client, body, status):
    response = client.post("/$batch", content=body, headers=JSON)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == "BadRequest"


def test_a_batch_not_sent_as_json_is_a_415(client):
    response = client.post("/$batch", content=b"{}", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415


def test_an_empty_batch_answers_no_responses(client):
    assert answers(send(client)) == {}


def test_a_batch_inside_a_batch_is_refused_in_its_place(client, user_id):
    """A nested `$batch` (however its path is spelled) is a 400 in its place; its requests do
    not run, the others do."""
    inner = {"requests": [create(user_id, "inner")]}
    items = answers(
        send(
            client,
            {"id": "plain", "method": "POST", "url": "/$batch", "headers": JSON, "body": inner},
            {"id": "encoded", "method": "POST", "url": "%24batch", "headers": JSON, "body": inner},
            {"id": "bare", "method": "POST", "url": "$batch", "headers": JSON, "body": inner},
            create(user_id, "outer"),
        )
    )
    assert items["plain"]["status"] == 400
    assert "$batch" in items["plain"]["body"]["error"]["message"]
    assert items["encoded"]["status"] == items["bare"]["status"] == 400
    assert items["outer"]["status"] == 201
    assert count_of(client, user_id) == 1


def test_urls_are_sent_as_a_client_would_encode_them(client, user_id):
    """Graph's own example has spaces in its `$filter`: the URL is percent-encoded as an HTTP
    client does, and answers as the same query sent alone."""
    client.post("/dataPolicyOperations", json={"userId": user_id})
    url = f"/dataPolicyOperations?$filter=userId eq '{user_id}'&$select=userId"
    item = answers(send(client, {"id": "1", "method": "GET", "url": url}))["1"]
    alone = client.get(
        "/dataPolicyOperations", params={"$filter": f"userId eq '{user_id}'", "$select": "userId"}
    )
    assert item["status"] == 200
    assert (
        item["body"]["value"]
        == alone.json()["value"]
        == [
            {
                "@odata.type": "#microsoft.graph.dataPolicyOperation",
                "@odata.etag": 'W/"1"',
                "userId": user_id,
            }
        ]
    )


# --- the batch's token, permissions, limits -------------------------------------------------------


def test_the_batch_needs_a_valid_token_and_runs_nothing_without_one(service, user_id):
    with service.client(headers={}) as anonymous:
        refused = send(anonymous, create(user_id))
    with service.client(headers={"Authorization": "Bearer not-a-token"}) as forged:
        forged_response = send(forged, create(user_id))
    assert refused.status_code == 401
    assert forged_response.status_code == 401
    with service.client() as http:
        assert count_of(http, user_id) == 0


def test_each_request_needs_its_own_routes_permission_with_the_batch_token(service, user_id):
    """A token with User.Read.All only: `/users` answers, the operations are a 403 each, and a
    request's own `Authorization` header (a token with every permission) is not used."""
    full = f"Bearer {token_for(service.data_dir, *PERMISSIONS)}"
    with client_with(service, READ_USERS) as reader:
        items = answers(
            send(
                reader,
                {"id": "users", "method": "GET", "url": "/users"},
                {"id": "ops", "method": "GET", "url": "/dataPolicyOperations"},
                create(user_id, "create", headers={**JSON, "Authorization": full}),
            )
        )
    assert items["users"]["status"] == 200, items["users"]
    assert items["ops"]["status"] == 403
    assert items["ops"]["body"]["error"]["code"] == "Authorization_RequestDenied"
    assert items["create"]["status"] == 403
    with service.client() as http:
        assert count_of(http, user_id) == 0


def test_each_request_spends_its_clients_rate_budget(limited: AppService, user_id):
    """Writes in a batch spend the write budget one each, as alone (the batch itself is one
    write): past the burst, a 429 with `Retry-After` in its place."""
    with client_with(limited, EXPORT) as http:
        items = answers(send(http, *(create(user_id, str(i)) for i in range(WRITE_BURST))))
    statuses = [item["status"] for item in items.values()]
    assert statuses == [201] * (WRITE_BURST - 1) + [429]  # the batch took one write
    throttled = items[str(WRITE_BURST - 1)]
    assert throttled["headers"]["Retry-After"].isdigit()
    assert throttled["body"]["error"]["code"] == "TooManyRequests"


def test_the_batch_body_is_bounded_by_the_request_limits(limited: AppService, user_id):
    """A batch larger than `[limits] max_body_bytes` is a 413 before anything runs."""
    requests = [create(user_id, str(i), padding="x" * 300) for i in range(15)]
    with client_with(limited, EXPORT) as http:
        response = send(http, *requests)
        assert response.status_code == 413
        assert count_of(http, user_id) == 0


def test_each_request_is_counted_in_the_metrics_under_its_route(client, user_id):
    series = REQUEST_DURATION.series("GET", "/v1.0/dataPolicyOperations/$count", 200)
    before = sum(series.counts)
    url = f"/dataPolicyOperations/$count?$filter=userId eq '{user_id}'"
    answers(send(client, *({"id": str(i), "method": "GET", "url": url} for i in range(3))))
    assert sum(series.counts) == before + 3


def test_each_change_is_audited_with_its_own_request_id(service: AppService, client, user_id):
    items = answers(send(client, create(user_id)))
    created = items["create"]
    log = service.running.audit_log
    (entry,) = log.entries(
        AuditFilter(operation_id=created["body"]["id"], action=AuditAction.OPERATION_STARTED)
    )
    assert entry.record.request_id == created["headers"]["request-id"]
    assert entry.record.client == "127.0.0.1"


# --- a request that breaks off ------------------------------------------------------------------


async def misbehaving(scope: Scope, receive: Receive, send: Send) -> None:
    """An app whose `/v1.0/broken` starts its answer and then raises, whose `/v1.0/dropped`
    waits for the connection to go and answers nothing (a dropped connection, as the scenarios
    drop one), and whose `/v1.0/ok` answers."""
    await receive()  # the body
    if scope["path"] == "/v1.0/broken":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("the package went away halfway")
    if scope["path"] == "/v1.0/dropped":
        while (await receive())["type"] != "http.disconnect":
            pass
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_a_request_that_breaks_off_or_drops_is_a_500_in_its_place_and_the_batch_goes_on():
    """The handler over an app that misbehaves: an answer that breaks off and one that never
    starts (a dropped connection: the batch's connection's disconnect reaches it, so nothing
    hangs) are Graph's 500 in their place; the next request runs; the batch is a 200."""
    document = {
        "requests": [
            {"id": "broken", "method": "GET", "url": "/broken"},
            {"id": "dropped", "method": "GET", "url": "/dropped"},
            {"id": "ok", "method": "GET", "url": "/ok"},
        ]
    }
    messages: list[Message] = [
        {"type": "http.request", "body": json.dumps(document).encode(), "more_body": False}
    ]

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1.0/$batch",
        "headers": [(b"content-type", b"application/json")],
        "query_string": b"",
        "app": misbehaving,
        "state": {"request_id": "batch-id"},
        ROUTE: RouteMatch(None, api_root=API_ROOT),  # the pipeline's look-up: the batch's root
    }
    response = asyncio.run(asyncio.wait_for(batch.post_batch(Request(scope, receive)), 10))
    assert response.status_code == 200
    items = {item["id"]: item for item in json.loads(bytes(response.body))["responses"]}
    for request_id in ("broken", "dropped"):
        assert items[request_id]["status"] == 500
        assert items[request_id]["body"]["error"]["code"] == "generalException"
        assert items[request_id]["body"]["error"]["innerError"]["request-id"] == "batch-id"
    assert items["ok"]["status"] == 200
    assert base64.b64decode(items["ok"]["body"]) == b"ok"
