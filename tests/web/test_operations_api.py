"""The /v1.0/dataPolicyOperations routes over HTTP: status codes, headers, bodies, errors."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import httpx
import pytest

from conftest import token_for
from datapolicy.auth.permissions import EXPORT
from datapolicy.web.routes.roots import API_ROOTS

ODATA_TYPE = "#microsoft.graph.dataPolicyOperation"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def create(client: httpx.Client, user_id: str, **extra) -> dict:
    response = client.post("/dataPolicyOperations", json={"userId": user_id, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def assert_graph_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    inner = error["innerError"]
    assert inner["request-id"] == response.headers["request-id"]
    assert inner["client-request-id"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$", inner["date"])
    return error


def test_create_returns_201_with_location_etag_and_the_entity(client, service, user_id):
    response = client.post("/dataPolicyOperations", json={"userId": user_id})
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"{service.url}/dataPolicyOperations/{body['id']}"
    assert response.headers["etag"] == body["@odata.etag"]
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["odata-version"] == "4.0"
    assert body["@odata.context"] == f"{service.url}/$metadata#dataPolicyOperations/$entity"
    assert body["@odata.type"] == ODATA_TYPE
    assert body["userId"] == user_id
    assert body["status"] == "notStarted"
    assert body["progress"] == 0
    assert body["completedDateTime"] is None
    assert body["storageLocation"] == f"{service.data_dir}/exports"  # the default location
    assert body["error"] is None
    assert ISO_UTC.match(body["submittedDateTime"])


def test_create_accepts_initial_values_of_read_only_properties(client, user_id):
    body = create(
        client,
        user_id,
        status="notStarted",
        progress=0,
        completedDateTime=None,
        operationType="exportPersonalData",
        error=None,
        **{"@odata.type": ODATA_TYPE},
    )
    assert body["status"] == "notStarted"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"userId": "u", "status": "complete"}, "'status' cannot be set"),
        ({"userId": "u", "progress": 50}, "'progress' cannot be set"),
        ({"userId": "u", "id": "mine"}, "'id' cannot be set"),
        # a POST starts an export: asking for an erasure here is refused, not exported
        ({"userId": "u", "operationType": "erasePersonalData"}, "'operationType' cannot be set"),
        ({"userId": "u", "error": {"code": "x", "message": "forged"}}, "'error' cannot be set"),
        ({"userId": "u", "submittedDateTime": "2024-01-01T00:00:00Z"}, "'submittedDateTime'"),
        ({"userId": "u", "colour": "red"}, "'colour' does not exist"),
        ({"userId": 5}, "expected a string"),
        ({"userId": "   "}, "must not be empty"),
        ({"userId": "a\u0000b"}, "control characters"),
        ({"userId": "u" * 257}, "longer than 256"),
        ({}, "'userId' is required"),
        ({"userId": "u", "@odata.type": "#microsoft.graph.user"}, "is not"),
    ],
)
def test_create_refuses_what_a_client_may_not_set(client, body, message):
    error = assert_graph_error(client.post("/dataPolicyOperations", json=body), 400, "BadRequest")
    assert message in error["message"]


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "BadRequest"),
        (b"[1, 2]", "application/json", 400, "BadRequest"),
        (b"", "application/json", 400, "BadRequest"),
        (b'{"userId": "u"}', "text/plain", 415, "UnsupportedMediaType"),
        (b'{"userId": "u"}', None, 415, "UnsupportedMediaType"),
        (b'{"userId": "' + b"x" * 70_000 + b'"}', "application/json", 413, "RequestEntityTooLarge"),
    ],
)
def test_bad_bodies_get_the_right_4xx(client, content, content_type, status, code):
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/dataPolicyOperations", content=content, headers=headers)
    assert_graph_error(response, status, code)


def test_get_returns_the_entity_with_its_etag(client, service, user_id):
    created = create(client, user_id)
    response = client.get(f"/dataPolicyOperations/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created
    assert response.headers["etag"] == created["@odata.etag"]


def test_if_none_match_with_the_current_etag_is_304(client, user_id):
    created = create(client, user_id)
    url = f"/dataPolicyOperations/{created['id']}"
    assert client.get(url, headers={"if-none-match": created["@odata.etag"]}).status_code == 304
    assert client.get(url, headers={"if-none-match": 'W/"999"'}).status_code == 200


def test_select_narrows_the_body_and_the_context(client, service, user_id):
    created = create(client, user_id)
    body = client.get(f"/dataPolicyOperations/{created['id']}?$select=status,id").json()
    assert body == {
        "@odata.context": f"{service.url}/$metadata#dataPolicyOperations(status,id)/$entity",
        "@odata.type": ODATA_TYPE,
        "@odata.etag": created["@odata.etag"],
        "status": "notStarted",
        "id": created["id"],
    }


def test_unknown_ids_are_404_in_graphs_shape(client):
    response = client.get("/dataPolicyOperations/does-not-exist")
    error = assert_graph_error(response, 404, "ResourceNotFound")
    assert "does-not-exist" in error["message"]


def test_client_request_id_is_echoed(client):
    response = client.get("/dataPolicyOperations/x", headers={"client-request-id": "mine-123"})
    assert response.headers["client-request-id"] == "mine-123"
    assert response.json()["error"]["innerError"]["client-request-id"] == "mine-123"
    assert response.headers["request-id"] != "mine-123"


def test_patch_changes_storage_location_and_the_etag(client, service, user_id):
    created = create(client, user_id)
    url = f"/dataPolicyOperations/{created['id']}"
    response = client.patch(
        url,
        json={"storageLocation": f"file://{service.data_dir}/exports/x"},
        headers={"if-match": created["@odata.etag"]},
    )
    assert response.status_code == 200
    assert response.json()["storageLocation"] == f"file://{service.data_dir}/exports/x"
    assert response.headers["etag"] != created["@odata.etag"]


def test_patch_accepts_an_unchanged_round_trip_of_the_entity(client, service, user_id):
    created = create(client, user_id)
    url = f"/dataPolicyOperations/{created['id']}"
    echoed = {**created, "storageLocation": f"file://{service.data_dir}/exports/y"}
    response = client.patch(url, json=echoed)
    assert response.status_code == 200, response.text
    assert response.json()["storageLocation"] == f"file://{service.data_dir}/exports/y"


@pytest.mark.parametrize(
    "change",
    [
        {"userId": "someone-else"},
        {"status": "complete"},
        {"progress": 100},
        {"submittedDateTime": "2020-01-01T00:00:00Z"},
        {"id": "other"},
    ],
)
def test_patch_refuses_to_change_server_owned_properties(client, user_id, change):
    created = create(client, user_id)
    url = f"/dataPolicyOperations/{created['id']}"
    assert_graph_error(client.patch(url, json=change), 400, "BadRequest")
    assert client.get(url).json() == created


def test_a_stale_etag_gets_412_and_changes_nothing(client, service, user_id):
    created = create(client, user_id)
    url = f"/dataPolicyOperations/{created['id']}"
    client.patch(url, json={"storageLocation": f"{service.data_dir}/exports/one"})
    current = client.get(url).json()
    stale = {"if-match": created["@odata.etag"]}
    response = client.patch(
        url, json={"storageLocation": f"{service.data_dir}/exports/two"}, headers=stale
    )
    assert_graph_error(response, 412, "PreconditionFailed")
    assert not (service.data_dir / "exports" / "two").exists()  # the check made nothing
    assert_graph_error(client.delete(url, headers=stale), 412, "PreconditionFailed")
    assert client.get(url).json() == current


def test_delete_with_a_matching_or_wildcard_etag(client, user_id):
    first, second = create(client, user_id), create(client, user_id)
    url = f"/dataPolicyOperations/{first['id']}"
    response = client.delete(url, headers={"if-match": first["@odata.etag"]})
    assert (response.status_code, response.content) == (204, b"")
    assert_graph_error(client.get(url), 404, "ResourceNotFound")
    assert_graph_error(client.delete(url), 404, "ResourceNotFound")
    response = client.delete(f"/dataPolicyOperations/{second['id']}", headers={"if-match": "*"})
    assert response.status_code == 204


def test_list_has_context_count_and_absolute_next_links(client, service, user_id):
    ids = [create(client, user_id)["id"] for _ in range(5)]
    params = {"$filter": f"userId eq '{user_id}'", "$top": "2", "$count": "true"}
    body = client.get("/dataPolicyOperations", params=params).json()
    assert body["@odata.context"] == f"{service.url}/$metadata#dataPolicyOperations"
    assert body["@odata.count"] == 5
    seen = [item["id"] for item in body["value"]]
    while "@odata.nextLink" in body:
        assert body["@odata.nextLink"].startswith(f"{service.url}/dataPolicyOperations?")
        body = client.get(body["@odata.nextLink"]).json()
        seen += [item["id"] for item in body["value"]]
    assert seen == ids


def test_the_sdk_style_double_slash_and_encoded_dollar_are_accepted(service, user_id):
    root = service.url
    with service.client() as http:
        created = http.post(f"{root}//dataPolicyOperations", json={"userId": user_id}).json()
        response = http.get(f"{root}//dataPolicyOperations?%24filter=userId%20eq%20%27{user_id}%27")
    assert [item["id"] for item in response.json()["value"]] == [created["id"]]


def test_count_route_answers_plain_text(client, user_id):
    for _ in range(3):
        create(client, user_id)
    response = client.get(
        "/dataPolicyOperations/$count", params={"$filter": f"userId eq '{user_id}'"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "3"
    response = client.get("/dataPolicyOperations/%24count", params={"$search": f'"{user_id}"'})
    assert response.text == "3"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/dataPolicyOperations?$expand=userId", "not a navigation property"),
        ("/dataPolicyOperations?$bogus=1", "'$bogus' is not supported"),
        ("/dataPolicyOperations?$top=-1", "non-negative integer"),
        ("/dataPolicyOperations?$filter=progress gt 'x'", "Edm.Double"),
        ("/dataPolicyOperations?$skiptoken=garbage", "$skiptoken is not valid"),
        ("/dataPolicyOperations/$count?$top=1", "not allowed on this request"),
        ("/dataPolicyOperations/x?$filter=userId eq 'a'", "not allowed on this request"),
    ],
)
def test_bad_query_options_are_400_with_a_reason(client, path, message):
    error = assert_graph_error(client.get(path), 400, "BadRequest")
    assert message in error["message"]


def test_wrong_method_is_405_with_allow(client):
    response = client.put("/dataPolicyOperations/x", json={})
    assert_graph_error(response, 405, "MethodNotAllowed")
    assert set(response.headers["allow"].split(", ")) >= {"GET", "PATCH", "DELETE"}


@pytest.mark.parametrize("method", ["PATCH", "DELETE", "PUT", "POST"])
@pytest.mark.parametrize("path", ["/dataPolicyOperations/$count", "/dataPolicyOperations/%24count"])
@pytest.mark.parametrize("permissions", [(), (EXPORT,)])
def test_count_is_not_an_id_other_methods_are_405(service, method, path, permissions):
    """`$count` only counts: other methods never reach the by-id handlers (which a token without
    User.Export.All reached before), with or without the permission."""
    token = token_for(service.data_dir, *permissions)
    with service.client(headers={"Authorization": f"Bearer {token}"}) as http:
        response = http.request(method, path, json={})
    assert_graph_error(response, 405, "MethodNotAllowed")
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD"}


def test_a_dollar_segment_is_never_an_id(client):
    """`$value` is no key: Graph's 400 names it; after `$count`, `package` is what no route has."""
    for path, segment in (
        ("/dataPolicyOperations/$value", "$value"),
        ("/dataPolicyOperations/$count/package", "package"),
    ):
        for response in (client.get(path), client.delete(path)):
            error = assert_graph_error(response, 400, "BadRequest")
            assert error["message"] == f"Resource not found for the segment '{segment}'."


def test_unknown_routes_are_graphs_400_naming_the_first_unknown_segment(client, service):
    """As Graph answers: 400 BadRequest "Resource not found for the segment 'x'.", naming the
    first segment no route has there (not the whole path), on any method, under either root."""
    for method, path, segment in [
        ("GET", "/nothingHere", "nothingHere"),
        ("GET", "/nothingHere/dataPolicyOperations", "nothingHere"),
        ("POST", "/dataPolicyOperations/some-id/cancel", "cancel"),
        ("GET", "/users/someone/manager", "manager"),
        ("POST", "/users('someone')/microsoft.graph.unknown", "microsoft.graph.unknown"),
        ("GET", "/dataPolicyOperations(some-id)", "dataPolicyOperations(some-id)"),
        ("GET", "/users/someone/exportPersonalData/x", "x"),
    ]:
        for root in API_ROOTS:
            response = client.request(method, f"{service.root}{root}{path}", json={})
            error = assert_graph_error(response, 400, "BadRequest")
            assert error["message"] == f"Resource not found for the segment '{segment}'."


def test_a_known_path_with_a_wrong_method_is_still_405(client, service):
    """Only unknown paths became Graph's 400: a route's path with a method it lacks is a 405
    with `Allow`, under either root and for an alias."""
    for path in ("/dataPolicyOperations", "/users/x/microsoft.graph.exportPersonalData"):
        for root in API_ROOTS:
            response = client.put(f"{service.root}{root}{path}", json={})
            assert_graph_error(response, 405, "MethodNotAllowed")
            assert response.headers["allow"]


def test_head_works_wherever_get_does(client, user_id):
    created = create(client, user_id)
    response = client.head(f"/dataPolicyOperations/{created['id']}")
    assert response.status_code == 200
    assert response.content == b""


def test_metadata_describes_the_entity_the_context_urls_point_to(client):
    response = client.get("/$metadata")
    assert response.status_code == 200
    root = ET.fromstring(response.content)
    names = {p.get("Name") for p in root.iter("{http://docs.oasis-open.org/odata/ns/edm}Property")}
    assert names == {
        "id",
        "userId",
        "operationType",
        "status",
        "progress",
        "storageLocation",
        "submittedDateTime",
        "completedDateTime",
        "error",
        "code",  # of the publicError complex type
        "message",
        "progressDetail",
        "part",  # of the dataPolicyOperationProgressDetail complex type
        "records",
        "bytes",
        "approval",
        "dryRun",
        "requestedBy",  # of the dataPolicyOperationApproval complex type
        "approvedBy",
        "approvedDateTime",
        "application",  # of the dataPolicyOperationPrincipal complex type
        "subject",
        "displayName",  # of the user entity type
        "mail",
        "userPrincipalName",
    }


def test_the_fast_read_path_answers_exactly_as_the_routed_one(client, user_id):
    """A plain GET by id is served below Starlette (web/hot_path/fastpath.py); a conditional GET
    that does not match goes through the router. Both must send the same body and headers."""
    created = create(client, user_id)
    url = f"/dataPolicyOperations/{created['id']}"
    fast = client.get(url)
    routed = client.get(url, headers={"if-none-match": 'W/"no-such-etag"'})
    assert fast.status_code == routed.status_code == 200
    assert fast.content == routed.content
    ignored = {"request-id", "client-request-id", "date"}
    assert {k: v for k, v in fast.headers.items() if k not in ignored} == {
        k: v for k, v in routed.headers.items() if k not in ignored
    }


def test_a_trailing_slash_is_an_unknown_resource_not_a_redirect(client, user_id):
    created = create(client, user_id)
    response = client.get(f"/dataPolicyOperations/{created['id']}/")
    error = assert_graph_error(response, 400, "BadRequest")
    assert error["message"] == "Resource not found for the segment ''."
