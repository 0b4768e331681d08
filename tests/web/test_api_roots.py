"""`/beta` serves the same API as `/v1.0` (web/routes/roots.py): the same routes, permissions
and answers, with every link (`@odata.context`, `@odata.nextLink`, `Location`) under the root
the request came in on, and the metrics of its own bounded series."""

from __future__ import annotations

import re

import httpx
import pytest

from conftest import Service, token_for
from datapolicy.auth.permissions import READ_USERS
from datapolicy.demo import demo_user_id

ADA = demo_user_id(0)


@pytest.fixture
def beta(service: Service):
    with httpx.Client(
        base_url=f"{service.root}/beta", headers=service.headers, transport=service.transport
    ) as http:
        yield http


def test_an_operation_made_under_beta_is_linked_under_beta_and_is_the_same_entity(
    beta, client, service, user_id
):
    created = beta.post("/dataPolicyOperations", json={"userId": user_id})
    assert created.status_code == 201, created.text
    body = created.json()
    assert created.headers["location"] == f"{service.root}/beta/dataPolicyOperations/{body['id']}"
    assert body["@odata.context"] == f"{service.root}/beta/$metadata#dataPolicyOperations/$entity"
    # The read fast path (a plain GET by id) and the routed one (a query string) agree.
    fast = beta.get(created.headers["location"])
    routed = beta.get(created.headers["location"], params={"$select": "id,status"})
    assert fast.json()["@odata.context"] == body["@odata.context"]
    assert routed.json()["@odata.context"] == (
        f"{service.root}/beta/$metadata#dataPolicyOperations(id,status)/$entity"
    )
    as_v1 = client.get(f"/dataPolicyOperations/{body['id']}").json()
    assert as_v1["@odata.context"] == f"{service.url}/$metadata#dataPolicyOperations/$entity"
    assert {**fast.json(), "@odata.context": None} == {**as_v1, "@odata.context": None}


def test_list_pages_follow_next_links_under_beta(beta, service, user_id):
    for _ in range(3):
        beta.post("/dataPolicyOperations", json={"userId": user_id})
    page = beta.get(
        "/dataPolicyOperations", params={"$filter": f"userId eq '{user_id}'", "$top": "2"}
    ).json()
    assert page["@odata.context"] == f"{service.root}/beta/$metadata#dataPolicyOperations"
    assert page["@odata.nextLink"].startswith(f"{service.root}/beta/dataPolicyOperations?")
    rest = beta.get(page["@odata.nextLink"]).json()
    assert len(page["value"]) + len(rest["value"]) == 3
    assert (
        beta.get("/dataPolicyOperations/$count", params={"$filter": f"userId eq '{user_id}'"}).text
        == "3"
    )


def test_users_and_actions_under_beta(demo_service):
    with httpx.Client(
        base_url=f"{demo_service.root}/beta",
        headers=demo_service.headers,
        transport=demo_service.transport,
    ) as beta:
        users = beta.get("/users", params={"$top": "3"}).json()
        assert users["@odata.context"] == f"{demo_service.root}/beta/$metadata#users"
        assert users["@odata.nextLink"].startswith(f"{demo_service.root}/beta/users?")
        assert (
            beta.get(f"/users/{ADA}")
            .json()["@odata.context"]
            .startswith(f"{demo_service.root}/beta/$metadata#users")
        )
        location = f"{demo_service.data_dir}/exports/beta"
        started = beta.post(f"/users/{ADA}/exportPersonalData", json={"storageLocation": location})
        assert started.status_code == 202, started.text
        assert started.headers["location"].startswith(
            f"{demo_service.root}/beta/dataPolicyOperations/"
        )
        assert started.headers["operation-location"] == started.headers["location"]


def test_beta_asks_the_same_permissions_and_refuses_alike(service, user_id):
    """A token without User.Export.All is refused under both roots alike; no token is a 401;
    the description is public under both."""
    weak = token_for(service.data_dir, READ_USERS)
    answers = {}
    for root in ("/v1.0", "/beta"):
        with httpx.Client(base_url=service.root + root, transport=service.transport) as http:
            answers[root] = (
                http.get("/dataPolicyOperations", headers={"Authorization": f"Bearer {weak}"}),
                http.get("/dataPolicyOperations"),
                http.get("/$metadata"),
            )
    for v1, beta in zip(answers["/v1.0"], answers["/beta"], strict=True):
        assert v1.status_code == beta.status_code
        assert v1.headers.get("www-authenticate") == beta.headers.get("www-authenticate")
    assert [response.status_code for response in answers["/beta"]] == [403, 401, 200]


def test_beta_requests_are_counted_under_beta_templates_never_ids(beta, client, service, user_id):
    """The metrics label a `/beta` request with its route's template under `/beta`: bounded
    (one more series per route), and never the id."""
    created = beta.post("/dataPolicyOperations", json={"userId": user_id}).json()
    beta.get(f"/dataPolicyOperations('{created['id']}')")
    beta.get("/nothing-here")
    with httpx.Client(transport=service.transport) as http:
        metrics = http.get(f"{service.root}/metrics").text
    routes = set(re.findall(r'route="([^"]*)"', metrics))
    assert "/beta/dataPolicyOperations/{operation_id}" in routes
    assert "/beta/dataPolicyOperations" in routes
    assert created["id"] not in metrics
    assert not any(route.startswith("/beta/nothing") for route in routes)
